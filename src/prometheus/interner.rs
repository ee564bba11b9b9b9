//! Label values (`str`) and tuples of their ids (`[u32]`), interned: each
//! stored once, however many series carry it, and freed with its last.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

/// The store's maps: looked up on every by-name record, keyed by the
/// application's own names and values (seeded per map, not SipHash).
pub(super) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub(super) struct Interner<K: ?Sized> {
    ids: FastMap<Arc<K>, u32>,
    /// By id: the value and how many series hold it.
    values: Vec<(Option<Arc<K>>, usize)>,
    free: Vec<u32>,
}

impl<K: ?Sized> Default for Interner<K> {
    fn default() -> Self {
        Interner {
            ids: FastMap::default(),
            values: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<K> Interner<K>
where
    K: ?Sized + Hash + Eq,
    for<'a> Arc<K>: From<&'a K>,
{
    pub(super) fn get(&self, value: &K) -> Option<u32> {
        self.ids.get(value).copied()
    }

    pub(super) fn value(&self, id: u32) -> Option<&K> {
        self.values.get(id as usize)?.0.as_deref()
    }

    /// The id of `value`, held once more.
    pub(super) fn hold(&mut self, value: &K) -> u32 {
        let id = match self.ids.get(value) {
            Some(id) => *id,
            None => {
                let value: Arc<K> = Arc::from(value);
                let id = match self.free.pop() {
                    Some(id) => {
                        self.values[id as usize] = (Some(value.clone()), 0);
                        id
                    }
                    None => {
                        self.values.push((Some(value.clone()), 0));
                        (self.values.len() - 1) as u32
                    }
                };
                self.ids.insert(value, id);
                id
            }
        };
        self.values[id as usize].1 += 1;
        id
    }

    /// Gives back one hold of `id`; with the last, the value goes.
    pub(super) fn release(&mut self, id: u32) {
        let Some(slot) = self.values.get_mut(id as usize) else {
            return;
        };
        slot.1 = slot.1.saturating_sub(1);
        if slot.1 == 0 {
            if let Some(value) = slot.0.take() {
                self.ids.remove(&value);
                self.free.push(id);
            }
        }
        if self.ids.capacity() > 64 && self.ids.len() < self.ids.capacity() / 4 {
            self.ids.shrink_to_fit();
        }
    }
}
