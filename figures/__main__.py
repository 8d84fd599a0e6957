from figures.render import main

raise SystemExit(main())
