// The registry's API speaks in PATKit and PATStore types (Timestamp, ScopeSet, KeyStore, PATHome…).
@_exported import PATStore
