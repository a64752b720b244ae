"""spark-submit entry point: every stage in one application (the streams run together).

    spark-submit --master spark://host:7077 --py-files dist/bigbilbao-0.1.0-py3-none-any.whl \
        jobs/all.py --config my.yaml [--until-idle] [--set section.key=value ...]
"""

from bigbilbao.cli.exiting import exit_process
from bigbilbao.cli.submit import main

if __name__ == "__main__":
    exit_process(main("all"))
