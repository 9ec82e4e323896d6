//! The private JWK `d` leaves no copy behind in freed memory: this test binary's allocator
//! looks into every block freed while a known key goes through the keys-file path (parse,
//! load, write back) and records any block that still holds `d`, as text or as bytes.
//!
//! One test only in this binary, so no other test's frees are looked at meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

use ory_proxy::keys::jwk::{EcKey, JwksJson};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use zeroize::Zeroizing;

/// The private scalar of the test key (any value below the P-256 order).
const D: [u8; 32] = [
    0x3c, 0x91, 0x5e, 0x07, 0xa2, 0x6b, 0xd4, 0x18, 0xf0, 0x4e, 0x77, 0x2a, 0xc5, 0x39, 0x8d, 0x60,
    0x1b, 0xe8, 0x53, 0x9f, 0x24, 0x7a, 0xcd, 0x0e, 0x96, 0x31, 0x5b, 0xf2, 0x48, 0xa7, 0x6c, 0x13,
];

/// base64url(D), no padding, as a constant so that the test builds it on no heap.
const D_B64: &[u8] = b"PJFeB6Jr1BjwTncqxTmNYBvoU58kes0OljFb8kinbBM";

static ARMED: AtomicBool = AtomicBool::new(false);
static LEAKS: AtomicUsize = AtomicUsize::new(0);
static FREED_BLOCKS: AtomicUsize = AtomicUsize::new(0);

struct Inspecting;

fn holds(block: &[u8], needle: &[u8]) -> bool {
    block.len() >= needle.len() && block.windows(needle.len()).any(|w| w == needle)
}

unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(SeqCst) {
            // SAFETY: the block is still allocated and `layout.size()` bytes long; it was
            // written before (a freed block's unwritten bytes are never read back here as
            // anything but bytes).
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            FREED_BLOCKS.fetch_add(1, SeqCst);
            if holds(block, &D) || holds(block, D_B64) {
                LEAKS.fetch_add(1, SeqCst);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A move to a bigger block frees the old one: look at it the same way.
        let new_layout = Layout::from_size_align(new_size, layout.align()).unwrap();
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn the_private_d_is_zeroized_wherever_the_keys_file_path_copies_it() {
    let _one = ONE_AT_A_TIME.lock().unwrap();
    // The public part, computed before arming (a public key is no secret).
    let secret = p256::SecretKey::from_slice(&D).unwrap();
    let point = secret.public_key().to_encoded_point(false);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (x, y) = (
        b64.encode(point.x().unwrap()),
        b64.encode(point.y().unwrap()),
    );
    assert_eq!(b64.encode(D).as_bytes(), D_B64, "the test's own constant");
    drop(secret);

    ARMED.store(true, SeqCst);
    {
        // The keys file as read from disk, in a zeroizing buffer like the proxy's.
        let mut file = Zeroizing::new(Vec::with_capacity(512));
        file.extend_from_slice(
            br#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":"k","x":""#,
        );
        file.extend_from_slice(x.as_bytes());
        file.extend_from_slice(br#"","y":""#);
        file.extend_from_slice(y.as_bytes());
        file.extend_from_slice(br#"","d":""#);
        file.extend_from_slice(D_B64);
        file.extend_from_slice(br#""}]}"#);

        let jwks: JwksJson = serde_json::from_slice(&file).unwrap();
        let key = EcKey::from_private_jwk(0, &jwks.keys[0]).unwrap();
        let signer = key.encoding_key().unwrap();
        // Written back, as on a rotation.
        let written = JwksJson {
            keys: vec![key.private_jwk(), EcKey::generate().private_jwk()],
        }
        .to_file_bytes()
        .unwrap();
        assert!(holds(&written, D_B64), "the written file holds d");
        drop((jwks, key, signer, written, file));
    }
    ARMED.store(false, SeqCst);

    assert!(FREED_BLOCKS.load(SeqCst) > 5, "the allocator saw the frees");
    assert_eq!(
        LEAKS.load(SeqCst),
        0,
        "freed blocks still holding the private d"
    );
}
