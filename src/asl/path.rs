//! ASL paths (being written).
