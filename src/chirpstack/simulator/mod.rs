//! A ChirpStack API server with synthetic devices (being written).
