"""The web application: app factory, layout, static assets, error mapping."""
