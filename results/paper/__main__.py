from results.paper import main

raise SystemExit(main())
