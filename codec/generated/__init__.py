"""Generated protocol modules; see codec.generate."""
