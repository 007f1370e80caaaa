"""How training is spread: thread replicas on one host, ranks across hosts (and processes on a host).

  collectives.py   who this process is in the job (Rank, Share) and the collectives training needs
  ranks.py         this rank's part of every global mini-batch, and that mini-batch's gradient
  threads.py       the gradient of a mini-batch over CPU cores: one single-threaded network replica per piece
  pooled.py        statistics of the whole training data added up over the ranks

A job of one process uses only threads.py; every function takes a Collective, the identity in one process.
"""
