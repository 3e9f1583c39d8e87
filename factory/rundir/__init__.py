"""The run directory: the contract between training, reports, the registry and monitoring.

Every file name of a run directory and run ids (``layout``), ``run.json`` (``manifest``),
listing, finding and reading runs (``catalog``), resume, checkpoints (the best-else-last rule
included), provenance and the Hydra callbacks that guard a run directory live here; everything
else imports them. Imports only the basics (errors, console, files, redact) and third-party
libraries, so any stage may read runs.

Named ``rundir``, not ``runs``: ``factory.runs()`` is the public listing function, and a
``factory.runs`` subpackage would replace it on the package once imported."""
