"""Dataset-scale fitting: many photos, streamed, resumable, sharded over devices and hosts.

  inputs.py    what to fit: a folder (recursive) or a CSV / JSON-lines list (path, person, landmarks,
               face_box); each item's output folder; a process's share of the items (hash of the path)
  manifest.py  what is finished: an append-only manifest per process (one JSON line per photo),
               summary.csv merged from every manifest
  stream.py    a bounded pipeline: load + detect on host threads, fixed-shape batches (the last padded)
  run.py       the loop: batches -> Reconstructor.fit (sharded over the local devices) -> atomic output
               folders -> manifest lines; plus the multi-process (``jax.distributed``) set-up

``tools/fit.py --input_dir`` / ``--input_list`` drive it (README: "Fitting a dataset").
"""
