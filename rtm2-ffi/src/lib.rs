//! The rtm2 C ABI (being built).
