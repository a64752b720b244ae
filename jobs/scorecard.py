"""spark-submit entry point: gold -> the balanced scorecard (published once).

    spark-submit --master spark://host:7077 --py-files dist/bigbilbao-0.1.0-py3-none-any.whl \
        jobs/scorecard.py --config my.yaml [--until-idle] [--set section.key=value ...]
"""

from bigbilbao.cli.exiting import exit_process
from bigbilbao.cli.submit import main

if __name__ == "__main__":
    exit_process(main("scorecard"))
