//! palisade demo: a three-service mesh with scenarios
