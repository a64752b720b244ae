"""Big Bilbao: city-intelligence stream processor (Kafka -> Spark -> Delta -> balanced scorecard)."""

__version__ = "0.1.0"
