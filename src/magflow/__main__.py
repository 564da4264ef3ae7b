from magflow.cli import main

raise SystemExit(main())
