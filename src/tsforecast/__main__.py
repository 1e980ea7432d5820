from tsforecast.cli import main

raise SystemExit(main())
