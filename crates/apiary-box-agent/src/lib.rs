//! The in-box agent (being written).
