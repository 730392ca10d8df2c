//! The one rule of linkgate's in-memory caches (remembered grants, users' generations, a
//! PostgreSQL node's kept rows): at most `max` entries, and past that the map starts again empty
//! — no eviction order to keep, and what was dropped is read again on its next use.

use std::collections::HashMap;
use std::hash::Hash;

/// Inserts `key`, emptying `map` first when it is full and `key` is not in it.
pub fn insert<K: Eq + Hash, V>(map: &mut HashMap<K, V>, key: K, value: V, max: usize) {
    if map.len() >= max && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_full_map_starts_again_empty_unless_the_key_is_in_it() {
        let mut map = std::collections::HashMap::new();
        for i in 0..3 {
            super::insert(&mut map, i, i, 3);
        }
        super::insert(&mut map, 1, 10, 3);
        assert_eq!(map.len(), 3, "replacing a key keeps the rest");
        super::insert(&mut map, 7, 7, 3);
        assert_eq!(map.len(), 1);
        assert_eq!(map.get(&7), Some(&7));
    }
}
