//! The rtm2 Node.js addon (being built).
