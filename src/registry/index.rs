//! Devices by id. A `HashMap<DeviceId, DeviceIdx>` keeps a second copy of each id's pointer in
//! every slot (24 bytes, ~3 MB for a province's 100,000 devices); this table keeps the 4-byte
//! index only and compares against the registry's own ids.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::Device;
use crate::ids::DeviceIdx;

#[derive(Debug, Clone, Default)]
pub struct DeviceIndex {
    table: HashTable<u32>,
    hasher: RandomState,
}

impl DeviceIndex {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            table: HashTable::with_capacity(n),
            hasher: RandomState::new(),
        }
    }

    /// The device with id `id` among `devices` (the list the indices point into).
    pub fn get(&self, devices: &[Device], id: &str) -> Option<DeviceIdx> {
        let hash = self.hasher.hash_one(id);
        self.table
            .find(hash, |&i| devices[i as usize].id.as_str() == id)
            .map(|&i| DeviceIdx(i))
    }

    /// Adds `devices[idx]` (its id not yet present: the caller checked).
    pub fn insert(&mut self, devices: &[Device], idx: DeviceIdx) {
        let hash = self.hasher.hash_one(devices[idx.get()].id.as_str());
        let rehash = |&i: &u32| self.hasher.hash_one(devices[i as usize].id.as_str());
        self.table.insert_unique(hash, idx.0, rehash);
    }

    /// Keeps the devices `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(DeviceIdx) -> bool) {
        self.table.retain(|i| keep(DeviceIdx(*i)));
    }

    pub fn shrink_to_fit(&mut self, devices: &[Device]) {
        let hasher = &self.hasher;
        self.table
            .shrink_to_fit(|&i| hasher.hash_one(devices[i as usize].id.as_str()));
    }
}
