//! The rtm2 Python extension (being built).
