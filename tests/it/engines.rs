//! (engines: to come)
