//! Which key of the keys file signs when, and how long each is published: one rule that every
//! instance applies to the same file, so that instances which read a new version of it at
//! different moments (a Kubernetes Secret reaches each pod on its own schedule) still agree on
//! which key signs at what time, and each publishes a key before any instance signs with it.
//!
//! - A key with `retire_at` is verify-only: published until then, it never signs.
//! - The others take turns by `sign_from` (absent: since always). The signer is the one with
//!   the latest `sign_from` that has passed; on a tie, the one listed first.
//! - A key is published as soon as the file lists it, ahead of its `sign_from`.
//! - Once its successor in turn has started signing, a key stays published for `keep` (the
//!   token lifetime and a margin: every token it signed has expired by then), counted from
//!   the successor's `sign_from`, or from when this instance first saw the key if that is
//!   later (an instance never drops a key sooner than `keep` after it first published it).
//!
//! Times in the file are whole Unix seconds.

use std::cmp::Reverse;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::jwk::EcKey;

/// A key of the keys file with its schedule.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub key: EcKey,
    /// When it may start signing; `None`: since always.
    pub sign_from: Option<SystemTime>,
    /// Verify-only, published until then.
    pub retire_at: Option<SystemTime>,
}

/// What an instance does with a key set at one moment.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// Index of the key that signs.
    pub signer: usize,
    /// Indices of the published keys: the signer first, then the others in file order.
    pub published: Vec<usize>,
    /// When the plan changes next (a key starts signing or leaves), if ever.
    pub next_change: Option<SystemTime>,
}

/// `t + d`, `None` past the end of time (then: never).
fn later(t: SystemTime, d: Duration) -> Option<SystemTime> {
    t.checked_add(d)
}

fn starts(k: &Scheduled) -> SystemTime {
    k.sign_from.unwrap_or(UNIX_EPOCH)
}

/// The keys that sign, in the order they take over: by `sign_from`, a tie's first-listed last.
fn turns(keys: &[Scheduled]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len())
        .filter(|&i| keys[i].retire_at.is_none())
        .collect();
    order.sort_by_key(|&i| (starts(&keys[i]), Reverse(i)));
    order
}

/// The plan at `now`; `None` when no key can sign now. `seen` tells when this instance first
/// saw a key.
pub fn plan(
    keys: &[Scheduled],
    now: SystemTime,
    keep: Duration,
    seen: &dyn Fn(&EcKey) -> SystemTime,
) -> Option<Plan> {
    let order = turns(keys);
    let signer_turn = order.iter().rposition(|&i| starts(&keys[i]) <= now)?;
    let signer = order[signer_turn];
    let mut published = vec![signer];
    let mut changes = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if i == signer {
            continue;
        }
        // Until when it is published; `None`: for as long as the file lists it.
        let until = match k.retire_at {
            Some(t) => Some(t),
            None => {
                let turn = order.iter().position(|&j| j == i).unwrap_or(0);
                match order.get(turn + 1).map(|&s| starts(&keys[s])) {
                    // Superseded: its tokens expire within `keep` of its last signature.
                    Some(successor) if successor <= now => later(successor.max(seen(&k.key)), keep),
                    // Ahead of its turn (it comes after the signer): published now.
                    _ => {
                        changes.push(starts(k));
                        None
                    }
                }
            }
        };
        match until {
            Some(t) if t <= now => {}
            Some(t) => {
                changes.push(t);
                published.push(i);
            }
            None => published.push(i),
        }
    }
    Some(Plan {
        signer,
        published,
        next_change: changes.into_iter().filter(|&t| t > now).min(),
    })
}

/// The keys worth keeping in the file at `now`: those [`plan`] publishes. All of them when
/// none can sign (nothing is thrown away from a file that is wrong).
pub fn pruned(
    keys: Vec<Scheduled>,
    now: SystemTime,
    keep: Duration,
    seen: &dyn Fn(&EcKey) -> SystemTime,
) -> Vec<Scheduled> {
    let Some(p) = plan(&keys, now, keep, seen) else {
        return keys;
    };
    keys.into_iter()
        .enumerate()
        .filter(|(i, _)| p.published.contains(i))
        .map(|(_, k)| k)
        .collect()
}

/// A rotation: `keys` less what has left the JWKS (see [`pruned`]), and a new key first that
/// signs from `publish_ahead` after `now` (rounded up to the second), published at once.
pub fn rotated(
    keys: Vec<Scheduled>,
    now: SystemTime,
    publish_ahead: Duration,
    keep: Duration,
    seen: &dyn Fn(&EcKey) -> SystemTime,
) -> Vec<Scheduled> {
    let mut out = pruned(keys, now, keep, seen);
    out.insert(
        0,
        Scheduled {
            key: EcKey::generate(),
            sign_from: Some(whole_second_after(now, publish_ahead)),
            retire_at: None,
        },
    );
    out
}

/// `now + d` rounded up to a whole second (the file's precision), so a key never signs
/// sooner than asked.
pub fn whole_second_after(now: SystemTime, d: Duration) -> SystemTime {
    let t = later(now, d).unwrap_or(now);
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Unix seconds as in the file.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Duration = Duration::from_secs(65);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn key(sign_from: Option<u64>, retire_at: Option<u64>) -> Scheduled {
        Scheduled {
            key: EcKey::generate(),
            sign_from: sign_from.map(at),
            retire_at: retire_at.map(at),
        }
    }

    fn early(_: &EcKey) -> SystemTime {
        UNIX_EPOCH
    }

    fn plan_at(keys: &[Scheduled], now: u64) -> Option<Plan> {
        plan(keys, at(now), KEEP, &early)
    }

    #[test]
    fn a_file_of_the_old_format_signs_with_its_first_key() {
        // First key signs; the others carry retire_at (verify-only), as older versions wrote.
        let keys = [key(None, None), key(None, Some(1_000)), key(None, Some(10))];
        let p = plan_at(&keys, 500).unwrap();
        assert_eq!(p.signer, 0);
        assert_eq!(p.published, [0, 1]);
        assert_eq!(p.next_change, Some(at(1_000)));
    }

    #[test]
    fn a_rotated_key_is_published_at_once_and_signs_at_its_time() {
        // NEXT signs from 100; CUR (no fields) signs until then.
        let keys = [key(Some(100), None), key(None, None)];
        let before = plan_at(&keys, 99).unwrap();
        assert_eq!(before.signer, 1, "the current key signs until 100");
        assert_eq!(before.published, [1, 0], "the next key is published ahead");
        assert_eq!(before.next_change, Some(at(100)));
        let after = plan_at(&keys, 100).unwrap();
        assert_eq!(after.signer, 0);
        assert_eq!(
            after.published,
            [0, 1],
            "the old key stays while its tokens live"
        );
        assert_eq!(after.next_change, Some(at(100 + 65)));
        let gone = plan_at(&keys, 165).unwrap();
        assert_eq!(gone.published, [0]);
        assert_eq!(gone.next_change, None);
    }

    #[test]
    fn a_key_is_kept_at_least_keep_after_this_instance_first_saw_it() {
        let keys = [key(Some(100), None), key(None, None)];
        let old = keys[1].key.kid.clone();
        let seen_late = move |k: &EcKey| if k.kid == old { at(500) } else { at(0) };
        let p = plan(&keys, at(520), KEEP, &seen_late).unwrap();
        assert_eq!(p.published, [0, 1]);
        assert_eq!(p.next_change, Some(at(565)));
    }

    #[test]
    fn rotations_in_a_row_sign_in_turn() {
        let keys = [key(Some(300), None), key(Some(200), None), key(None, None)];
        assert_eq!(plan_at(&keys, 150).unwrap().signer, 2);
        assert_eq!(plan_at(&keys, 250).unwrap().signer, 1);
        let p = plan_at(&keys, 300).unwrap();
        assert_eq!(p.signer, 0);
        // The first key was superseded at 200: gone at 265. The second at 300: until 365.
        assert_eq!(p.published, [0, 1]);
        // Order in the file does not decide, sign_from does.
        let shuffled = [key(None, None), key(Some(300), None), key(Some(200), None)];
        assert_eq!(plan_at(&shuffled, 250).unwrap().signer, 2);
        assert_eq!(plan_at(&shuffled, 300).unwrap().signer, 1);
    }

    #[test]
    fn ties_go_to_the_first_listed_and_verify_only_keys_never_sign() {
        let keys = [key(None, None), key(None, None)];
        let p = plan(&keys, at(10), KEEP, &|_| at(0)).unwrap();
        assert_eq!(p.signer, 0);
        assert_eq!(p.published, [0, 1], "kept for `keep` after first seen");
        assert_eq!(
            plan(&keys, at(65), KEEP, &|_| at(0)).unwrap().published,
            [0]
        );
        // Only verify-only keys, or only keys whose time has not come: nobody can sign.
        assert!(plan_at(&[key(None, Some(100))], 50).is_none());
        assert!(plan_at(&[key(Some(100), None)], 50).is_none());
    }

    #[test]
    fn a_rotation_prunes_what_left_and_rounds_up_to_the_second() {
        let keys = vec![key(Some(100), None), key(None, None), key(None, Some(150))];
        let now = UNIX_EPOCH + Duration::from_millis(200_500);
        let out = rotated(keys, now, Duration::from_secs(10), KEEP, &early);
        // The first old key left at 165, the verify-only one at 150.
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].sign_from, Some(at(211)));
        assert_eq!(out[1].sign_from, Some(at(100)));
        // A file where nothing can sign is kept whole.
        let stuck = vec![key(Some(10_000), None)];
        assert_eq!(pruned(stuck, at(1), KEEP, &early).len(), 1);
    }
}
