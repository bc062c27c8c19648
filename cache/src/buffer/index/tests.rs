use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

/// Keys are `u32`s standing in for entries; `hash` gives them few distinct home slots so runs
/// collide and wrap, which is where backward-shift deletion can go wrong.
fn hash(key: u32) -> u64 {
    (u64::from(key % 5) << 32) | u64::from(key % 3) | 0xfff8
}

proptest! {
    #[test]
    fn index_matches_a_hashmap(ops in prop::collection::vec((any::<bool>(), 0u32..12), 1..200)) {
        let mut index = KeyIndex::new(12);
        let mut model: HashMap<u32, ()> = HashMap::new();
        for (add, key) in ops {
            let pos = index.find(hash(key), |e| e == key);
            prop_assert_eq!(pos.is_some(), model.contains_key(&key));
            match (add, pos) {
                (true, None) => {
                    index.insert(hash(key), key);
                    model.insert(key, ());
                }
                (false, Some(pos)) => {
                    prop_assert_eq!(index.head(pos), key);
                    index.remove(pos, hash);
                    model.remove(&key);
                }
                _ => {}
            }
            prop_assert_eq!(index.len(), model.len());
            for key in 0..12 {
                let found = index.find(hash(key), |e| e == key);
                prop_assert_eq!(found.is_some(), model.contains_key(&key));
            }
        }
    }
}

#[test]
fn set_head_moves_the_key_to_another_entry() {
    let mut index = KeyIndex::new(4);
    index.insert(7, 1);
    let pos = index.find(7, |e| e == 1).unwrap();
    index.set_head(pos, 2);
    assert_eq!(index.find(7, |e| e == 2).map(|pos| index.head(pos)), Some(2));
}
