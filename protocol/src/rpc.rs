//! Calls across the lattice: one component (or a lattice client such as `trellis call`)
//! invokes an export of a component that runs on another host.
//!
//! A call is one NATS request to `wasmbus.rpc.{lattice}.{target}.{ns:pkg/iface}.{function}`.
//! Every host running `target` queue-subscribes to `wasmbus.rpc.{lattice}.{target}.>` in
//! the queue group `{lattice}.{target}`, so instances on several hosts share the load and a
//! call with no running target fails at once with NATS "no responders".
//!
//! The request is a [`SignedCall`] in MessagePack: the encoded [`CallRequest`] and an ed25519
//! signature over exactly those bytes by the caller's key (a host's server key `N…` when a
//! component calls, a throw-away user key `U…` for lattice clients). The callee verifies the
//! signature before it decodes anything else, so the caller's identity (`caller`) cannot be
//! forged without that key. The reply is a [`CallReply`].
//!
//! Values are MessagePack values shaped by the WIT types, so both ends convert them with the
//! types of the function in hand (see the host's `values` module): records and variants are
//! maps keyed by field/case name, enums are strings, flags are arrays of names, `list<u8>` is
//! binary, `option` is nil or the value, `result` is `{"ok": v}` or `{"err": v}`.

use serde::{Deserialize, Serialize};

use crate::keys::KeyKind;

/// The subject prefix of calls (before the lattice name).
pub const RPC_PREFIX: &str = "wasmbus.rpc";

/// `wasmbus.rpc.{lattice}.{target}.{interface}.{function}`.
pub fn call_subject(lattice: &str, target: &str, interface: &str, function: &str) -> String {
    format!("{RPC_PREFIX}.{lattice}.{target}.{interface}.{function}")
}

/// What a host running `target` subscribes to.
pub fn target_wildcard(lattice: &str, target: &str) -> String {
    format!("{RPC_PREFIX}.{lattice}.{target}.>")
}

/// The queue group shared by every instance of `target`.
pub fn queue_group(lattice: &str, target: &str) -> String {
    format!("{lattice}.{target}")
}

/// Whether a name can be one token of a NATS subject (ids, interfaces, function names).
pub fn is_subject_token(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace())
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The public key that signed the call: a host (`N…`) or a lattice client (`U…`).
    pub key: String,
    /// The calling component, when a component calls (through a link).
    pub component_id: Option<String>,
    /// The link the call went through.
    pub link_name: String,
}

/// One call, as signed by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRequest {
    pub caller: Caller,
    pub lattice: String,
    pub target: String,
    /// `ns:pkg/iface`, no version.
    pub interface: String,
    pub function: String,
    /// The caller's remaining time budget when it sent the call, in milliseconds; the callee
    /// stops working on the call after that.
    pub timeout_ms: u64,
    /// Unix time of sending, in milliseconds (calls far older than their timeout are refused).
    pub sent_at_ms: u64,
    pub args: Vec<rmpv::Value>,
}

impl Caller {
    /// `key` calling, for `component_id` when a component calls, through `link_name`.
    pub fn new(key: impl Into<String>, component_id: Option<&str>, link_name: &str) -> Self {
        Self {
            key: key.into(),
            component_id: component_id.map(str::to_string),
            link_name: link_name.to_string(),
        }
    }
}

impl CallRequest {
    /// A call sent now, which the callee may work on for `timeout`.
    pub fn new(
        caller: Caller,
        lattice: &str,
        target: &str,
        interface: &str,
        function: &str,
        timeout: std::time::Duration,
        args: Vec<rmpv::Value>,
    ) -> Self {
        Self {
            caller,
            lattice: lattice.to_string(),
            target: target.to_string(),
            interface: interface.to_string(),
            function: function.to_string(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            sent_at_ms: now_ms(),
            args,
        }
    }
}

/// The frame on the wire: `request` is the MessagePack encoding of a [`CallRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedCall {
    #[serde(with = "serde_bytes")]
    pub request: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// The answer to a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CallReply {
    Ok(Vec<rmpv::Value>),
    Err(CallError),
}

/// Why a call failed, for the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    pub kind: CallErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallErrorKind {
    /// The frame could not be read, or its signature does not hold.
    BadRequest,
    /// The caller may not call this target (no link).
    Forbidden,
    /// The target has no such export, or the arguments do not fit its types.
    NoSuchFunction,
    /// The target trapped, or failed to instantiate.
    Trapped,
    /// The target did not finish within the caller's deadline.
    Timeout,
    /// The target is at its concurrency limit.
    Busy,
}

/// Why a frame was refused before the call ran.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("malformed call frame: {0}")]
    Malformed(String),
    #[error("the call's signature does not verify against caller key {0}")]
    BadSignature(String),
    #[error("caller key `{0}` is neither a host (N…) nor a user (U…) public key")]
    BadKey(String),
    #[error("the call claims to come from component `{0}`, but was not signed by a host key")]
    ComponentWithoutHost(String),
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// Encodes and signs a call with `key` (whose public key must be `request.caller.key`).
pub fn sign(request: &CallRequest, key: &nkeys::KeyPair) -> Result<Vec<u8>, FrameError> {
    let request =
        rmp_serde::to_vec_named(request).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let signature = key
        .sign(&request)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    rmp_serde::to_vec_named(&SignedCall { request, signature })
        .map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Decodes a frame and verifies its signature before trusting anything in it.
pub fn open(frame: &[u8]) -> Result<CallRequest, FrameError> {
    let signed: SignedCall =
        rmp_serde::from_slice(frame).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let request: CallRequest =
        rmp_serde::from_slice(&signed.request).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let key = &request.caller.key;
    let is_host = crate::keys::is_public_key_of(key, KeyKind::Server);
    if !is_host && !crate::keys::is_public_key_of(key, KeyKind::User) {
        return Err(FrameError::BadKey(key.clone()));
    }
    let verifier =
        nkeys::KeyPair::from_public_key(key).map_err(|_| FrameError::BadKey(key.clone()))?;
    verifier
        .verify(&signed.request, &signed.signature)
        .map_err(|_| FrameError::BadSignature(key.clone()))?;
    if let Some(component) = &request.caller.component_id
        && !is_host
    {
        return Err(FrameError::ComponentWithoutHost(component.clone()));
    }
    Ok(request)
}

/// Encodes a reply.
pub fn encode_reply(reply: &CallReply) -> Vec<u8> {
    rmp_serde::to_vec_named(reply).unwrap_or_default()
}

/// Decodes a reply.
pub fn decode_reply(bytes: &[u8]) -> Result<CallReply, FrameError> {
    rmp_serde::from_slice(bytes).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: &str, component: Option<&str>) -> CallRequest {
        CallRequest {
            caller: Caller {
                key: key.into(),
                component_id: component.map(str::to_string),
                link_name: "default".into(),
            },
            lattice: "default".into(),
            target: "greeter".into(),
            interface: "trellis:test/greet".into(),
            function: "greet".into(),
            timeout_ms: 1000,
            sent_at_ms: now_ms(),
            args: vec![rmpv::Value::from("world")],
        }
    }

    #[test]
    fn a_signed_call_opens_to_the_same_request() {
        let host = KeyKind::Server.generate();
        let call = request(&host.public_key(), Some("relay"));
        let frame = sign(&call, &host).unwrap();
        assert_eq!(open(&frame).unwrap(), call);
    }

    #[test]
    fn a_forged_caller_or_changed_byte_is_refused() {
        let host = KeyKind::Server.generate();
        let other = KeyKind::Server.generate();
        // Signed by `other` but claiming to be `host`.
        let frame = sign(&request(&host.public_key(), Some("relay")), &other).unwrap();
        assert!(matches!(open(&frame), Err(FrameError::BadSignature(_))));
        // Every single-bit change of a valid frame is refused or decodes to the same call.
        let call = request(&host.public_key(), Some("relay"));
        let frame = sign(&call, &host).unwrap();
        for i in 0..frame.len() {
            let mut bent = frame.clone();
            bent[i] ^= 0x01;
            if let Ok(opened) = open(&bent) {
                assert_eq!(opened, call, "byte {i} changed the call undetected");
            }
        }
    }

    #[test]
    fn components_must_be_vouched_for_by_a_host() {
        let user = KeyKind::User.generate();
        let frame = sign(&request(&user.public_key(), Some("relay")), &user).unwrap();
        assert!(matches!(
            open(&frame),
            Err(FrameError::ComponentWithoutHost(_))
        ));
        let frame = sign(&request(&user.public_key(), None), &user).unwrap();
        assert!(open(&frame).is_ok());
        let account = KeyKind::Account.generate();
        let frame = sign(&request(&account.public_key(), None), &account).unwrap();
        assert!(matches!(open(&frame), Err(FrameError::BadKey(_))));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bytes in [&b""[..], b"\x00", b"\x91\xc4", b"hello"] {
            assert!(open(bytes).is_err());
        }
    }

    #[test]
    fn subjects_and_tokens() {
        assert_eq!(
            call_subject("default", "greeter", "trellis:test/greet", "greet"),
            "wasmbus.rpc.default.greeter.trellis:test/greet.greet"
        );
        assert!(is_subject_token("trellis:test/greet"));
        assert!(!is_subject_token("[method]thing.get"));
        assert!(!is_subject_token(""));
    }
}
