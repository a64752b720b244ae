# One image for the Spark master and workers, the jobs and Jupyter (used by docker-compose.yml):
# the official Apache Spark image (Spark 4.2.0 = the pinned pyspark, Scala 2.13, Java 17, Python 3.10)
# plus the project, its Python packages, its JVM jars and the package zip that jobs ship to executors.
ARG SPARK_IMAGE=apache/spark:4.2.0-scala2.13-java17-python3-ubuntu
FROM ${SPARK_IMAGE}

USER root
WORKDIR /opt/bigbilbao
COPY pyproject.toml README.md LICENSE ./
COPY bigbilbao ./bigbilbao
COPY schemas ./schemas
COPY jobs ./jobs
COPY notebooks ./notebooks

# Jars go to a fixed folder (not the user cache) so every container finds them; `bigbilbao setup`
# resolves them with pyspark's bundled Ivy (or Maven when present), honouring BIGBILBAO_IVY_SETTINGS.
ENV BIGBILBAO__JVM__JARS_DIR=/opt/bigbilbao/jars \
    PYSPARK_PYTHON=python3 \
    PYSPARK_DRIVER_PYTHON=python3
RUN pip install --no-cache-dir . jupyterlab \
    && bigbilbao setup \
    && mkdir -p /lakehouse \
    && chown -R spark:spark /opt/bigbilbao /lakehouse

USER spark
