"""Local tools: SageMaker's jobs imitated on this machine, without Docker or AWS.

Installed by the development set-up (scripts/dev-setup.sh), never by the image. It drives the
real `train` and `serve` entrypoints of the runtime package `lstm_ad`; nothing in `lstm_ad`
imports it.
"""
