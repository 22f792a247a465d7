"""``make gpu-paper``: the paper's claims from one GPU command, within a deadline (issue 40).

    python -m experiments.gpu_paper [--deadline 540] [--smoke] [--plan] [--out DIR] \\
        [--cache DIR] [--append-results] [--max-seeds 5]

Stages, in priority order, each written to ``<out>/report.md`` / ``report.json`` as soon as it
(and each of its runs) finishes, so a command cut off at any point leaves everything it finished:

1. devices, roles and versions (``python -m ald_jax.doctor``) and ``nvidia-smi``'s identity;
   beside it the persistent compile cache (``<out>/jax_cache``) is warmed once per program
   shape, one short process per shape, several at once while nothing is being timed;
2. imaze9 ``profile=gpu`` threaded, stopped at 90% success: ALD, LSTM, GTrXL interleaved by seed
   (s0 of each, then s1, ...; two seeds each before stage 3, more while stage 3 still fits):
   env steps and training seconds to 90%, compile seconds, env steps/s, the learner's agent
   steps/s in the system over its update timed alone (``experiments.gpu_paper.alone``), GPU
   utilisation (``nvidia-smi`` samples);
3. imaze9 ``mode=fused``, 16 seeds in one program, ALD then GTrXL, then ALD with one seed:
   env steps to 90% per seed, the program's wall-clock, a seed's cost (16 seeds / 1 seed);
4. metafetch4 ALD and LSTM for equal training seconds, from the time left.

Every run's training seconds are cut to what the deadline leaves (``figures.Estimates``: the
last measured figures, replaced by this command's own as runs finish); what cannot finish in
time is skipped with a line saying so. ``--plan`` prints the expected seconds of each stage.
``--smoke`` (``GPU_PAPER_SMOKE=1``): the same stages on the CPU, tiny debug tasks. The driver
never imports JAX; every run is ``python -m ald_jax.run`` in a process of its own.
"""
