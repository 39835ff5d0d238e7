//! placeholder until the token module lands
