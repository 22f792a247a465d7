from experiments.gpu_paper.cli import main

raise SystemExit(main())
