from lenet.cli import main

raise SystemExit(main())
