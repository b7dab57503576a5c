from wildhands.cli import main

raise SystemExit(main())
