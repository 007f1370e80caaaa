"""The SageMaker shell: the only code that knows /opt/ml, environment variables, HTTP and metric lines.

paths.py        the /opt/ml layout rooted anywhere (SAGEMAKER_BASE_DIR), config files, failure file
hyperparameters.py  SageMaker's strings -> Hyperparameters; platform keys ignored
cli.py          the `train` and `serve` console scripts
gpus.py         the host's GPUs (/dev/nvidia*); training refuses GPUs that torch cannot use
metrics.py      metric lines and their MetricDefinitions regexes
process.py      allocator and thread tuning of the train and serve processes
server.py       gunicorn; settings.py its environment; app.py the Flask app;
payloads.py     request/response codecs; csv_format.py fast CSV output
"""
