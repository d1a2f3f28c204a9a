"""Users, roles, region scope, sessions and the append-only audit trail."""
