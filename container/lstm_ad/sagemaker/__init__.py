"""The SageMaker shell: the only code that knows /opt/ml, environment variables, HTTP and metric lines.

  paths.py            the /opt/ml layout rooted anywhere (SAGEMAKER_BASE_DIR), config files, failure file
  hyperparameters.py  SageMaker's strings -> Hyperparameters; platform keys ignored
  cli.py              the `train` and `serve` console scripts; run_train, the training job as a function
  gpus.py             the host's GPUs (/dev/nvidia*); training refuses GPUs that torch cannot use
  metrics.py          metric lines and their MetricDefinitions regexes
  process.py          allocator and thread tuning of the train and serve processes
  environment.py      numbers from environment variables, read one way (settings.py, cluster.py)
  cluster.py          resourceconfig.json, S3DistributionType and the LSTM_AD_* cluster settings
  ranks.py            joining the job's process group; local_rank.py, a host's further training processes
  server.py           gunicorn; worker.py its worker; settings.py its environment; app.py the Flask app
  payloads.py         request and response bodies; csv_format.py fast CSV output; outputs.py optional columns
"""
