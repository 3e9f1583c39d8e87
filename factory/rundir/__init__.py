"""The run directory: the contract between training, reports, the registry and monitoring.

Every file name of a run directory, run ids, ``run.json``, resume, checkpoints and provenance
live here; everything else imports them. Imports only the basics (errors, files, redact) and
third-party libraries, so any stage may read runs.

Named ``rundir``, not ``runs``: ``factory.runs()`` is the public listing function, and a
``factory.runs`` subpackage would replace it on the package once imported."""
