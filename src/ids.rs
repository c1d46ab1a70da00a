//! Typed identifiers. External ids (`SpaceId`, `DeviceId`) are the names used in config, topics, the
//! database and the API; dense indices (`SpaceIdx`, `DeviceIdx`) address the registry's flat vectors on
//! the hot path, so per-report work never hashes or clones a string beyond the one topic lookup.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(s: impl Into<Arc<str>>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }
    };
}

macro_rules! index_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(pub u32);

        impl $name {
            pub fn get(self) -> usize {
                self.0 as usize
            }
        }
    };
}

string_id!(
    /// A space's id as written in config and topics (`vf/{space_id}/…`).
    SpaceId
);
string_id!(
    /// A device's id as written in config and topics (`vf/{space_id}/{device_id}/…`).
    DeviceId
);
index_id!(
    /// Position of a space in [`crate::registry::Registry::spaces`].
    SpaceIdx
);
index_id!(
    /// Position of a device in [`crate::registry::Registry::devices`].
    DeviceIdx
);
