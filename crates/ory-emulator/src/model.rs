//! The JSON shapes of Kratos' public API (`session`, `identity`, `loginFlow`,
//! `registrationFlow`, `uiContainer`/`uiNode`), built from the store's records.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::config::Settings;
use super::second_factor::CODE_FIELD;
use super::state::{Aal, Flow, FlowKind, Identity, Session, UiText};

/// RFC 3339 with microseconds and `Z`, as Kratos writes timestamps.
pub(crate) fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// Path of the only identity schema, `default` base64url-encoded like Kratos names it.
pub(crate) const SCHEMA_PATH: &str = "/schemas/ZGVmYXVsdA";

pub(crate) fn identity_json(identity: &Identity, settings: &Settings) -> Value {
    let created = timestamp(identity.created_at);
    json!({
        "id": identity.id,
        "schema_id": "default",
        "schema_url": settings.url(SCHEMA_PATH),
        "state": "active",
        "state_changed_at": created,
        "traits": { "email": identity.email },
        "verifiable_addresses": [{
            "id": identity.verifiable_address_id,
            "value": identity.email,
            "verified": false,
            "via": "email",
            "status": "pending",
            "created_at": created,
            "updated_at": created,
        }],
        "recovery_addresses": [{
            "id": identity.recovery_address_id,
            "value": identity.email,
            "via": "email",
            "created_at": created,
            "updated_at": created,
        }],
        "metadata_public": null,
        "created_at": created,
        "updated_at": created,
        "organization_id": null,
    })
}

pub(crate) fn session_json(session: &Session, identity: &Identity, settings: &Settings) -> Value {
    let issued = timestamp(session.issued_at);
    let mut methods = vec![json!({ "method": "password", "aal": "aal1", "completed_at": issued })];
    if let Some(at) = session.second_factor_at {
        methods.push(json!({ "method": "totp", "aal": "aal2", "completed_at": timestamp(at) }));
    }
    json!({
        "id": session.id,
        "active": session.is_active(SystemTime::now()),
        "expires_at": timestamp(session.expires_at),
        "authenticated_at": issued,
        "authenticator_assurance_level": session.aal().as_str(),
        "authentication_methods": methods,
        "issued_at": issued,
        "identity": identity_json(identity, settings),
        "devices": [{
            "id": session.device.id,
            "ip_address": session.device.ip_address,
            "user_agent": session.device.user_agent,
            "location": "",
        }],
        "tokenized": null,
    })
}

/// Path of a flow's submit endpoint and of its UI page.
pub(crate) fn flow_paths(kind: FlowKind) -> (&'static str, &'static str) {
    match kind {
        FlowKind::Login => ("/self-service/login", "/ui/login"),
        FlowKind::Registration => ("/self-service/registration", "/ui/registration"),
    }
}

/// Absolute URL the flow's form posts to.
pub(crate) fn flow_action(flow: &Flow, settings: &Settings) -> String {
    let (submit, _) = flow_paths(flow.kind);
    settings.url(&format!("{submit}?flow={}", flow.id))
}

/// One input of a flow's form, as the HTML UI renders it and the JSON lists it.
pub(crate) struct Field {
    pub name: &'static str,
    pub input_type: &'static str,
    pub group: &'static str,
    pub autocomplete: Option<&'static str>,
    pub label: Option<(u32, &'static str)>,
    pub required: bool,
}

/// The inputs of a flow in the order Kratos lists them.
pub(crate) fn fields(flow: &Flow) -> Vec<Field> {
    let csrf = Field {
        name: "csrf_token",
        input_type: "hidden",
        group: "default",
        autocomplete: None,
        label: None,
        required: true,
    };
    if flow.requested_aal == Aal::Aal2 {
        // Kratos' TOTP strategy: the code and its submit button, in the `totp` group.
        return vec![
            csrf,
            Field {
                name: CODE_FIELD,
                input_type: "text",
                group: "totp",
                autocomplete: Some("one-time-code"),
                label: Some((1010006, "Authentication code")),
                required: true,
            },
            Field {
                name: "method",
                input_type: "submit",
                group: "totp",
                autocomplete: None,
                label: Some((1010009, "Use Authenticator")),
                required: false,
            },
        ];
    }
    let (identifier, label, autocomplete, password_autocomplete, submit_label) = match flow.kind {
        FlowKind::Login => (
            "identifier",
            (1070004, "ID"),
            "username",
            "current-password",
            (1010001, "Sign in"),
        ),
        FlowKind::Registration => (
            "traits.email",
            (1070002, "E-Mail"),
            "email",
            "new-password",
            (1040001, "Sign up"),
        ),
    };
    vec![
        csrf,
        Field {
            name: identifier,
            input_type: if flow.kind == FlowKind::Login {
                "text"
            } else {
                "email"
            },
            group: "default",
            autocomplete: Some(autocomplete),
            label: Some(label),
            required: true,
        },
        Field {
            name: "password",
            input_type: "password",
            group: "password",
            autocomplete: Some(password_autocomplete),
            label: Some((1070001, "Password")),
            required: true,
        },
        Field {
            name: "method",
            input_type: "submit",
            group: "password",
            autocomplete: None,
            label: Some(submit_label),
            required: false,
        },
    ]
}

/// The value a field shows: the CSRF token, the submit method, or what the user typed (never
/// a secret: password and code fields start empty again).
pub(crate) fn field_value(flow: &Flow, field: &Field) -> String {
    match field.name {
        "csrf_token" => flow.csrf_token.clone(),
        "method" => flow.method().to_owned(),
        "password" | CODE_FIELD => String::new(),
        name => flow.values.get(name).cloned().unwrap_or_default(),
    }
}

fn text_json(text: &UiText) -> Value {
    json!({ "id": text.id, "text": text.text, "type": text.kind })
}

fn node_json(flow: &Flow, field: &Field) -> Value {
    let mut attributes = json!({
        "name": field.name,
        "type": field.input_type,
        "value": field_value(flow, field),
        "required": field.required,
        "disabled": false,
        "node_type": "input",
    });
    if let (Some(ac), Some(obj)) = (field.autocomplete, attributes.as_object_mut()) {
        obj.insert("autocomplete".to_owned(), ac.into());
    }
    let meta = match field.label {
        Some((id, text)) => json!({ "label": { "id": id, "text": text, "type": "info" } }),
        None => json!({}),
    };
    let messages: Vec<Value> = flow
        .field_messages
        .iter()
        .filter(|(name, _)| name == field.name)
        .map(|(_, t)| text_json(t))
        .collect();
    json!({
        "type": "input",
        "group": field.group,
        "attributes": attributes,
        "messages": messages,
        "meta": meta,
    })
}

/// `loginFlow` or `registrationFlow`.
pub(crate) fn flow_json(flow: &Flow, settings: &Settings) -> Value {
    let nodes: Vec<Value> = fields(flow).iter().map(|f| node_json(flow, f)).collect();
    let mut ui = json!({
        "action": flow_action(flow, settings),
        "method": "POST",
        "nodes": nodes,
    });
    if !flow.messages.is_empty() {
        if let Some(obj) = ui.as_object_mut() {
            let messages: Vec<Value> = flow.messages.iter().map(text_json).collect();
            obj.insert("messages".to_owned(), messages.into());
        }
    }
    let mut body = json!({
        "id": flow.id,
        "type": "browser",
        "expires_at": timestamp(flow.expires_at),
        "issued_at": timestamp(flow.issued_at),
        "request_url": flow.request_url,
        "ui": ui,
        "state": "choose_method",
        "organization_id": null,
    });
    if let Some(obj) = body.as_object_mut() {
        if let Some(return_to) = &flow.return_to {
            obj.insert("return_to".to_owned(), return_to.clone().into());
        }
        if let Some(active) = flow.active {
            obj.insert("active".to_owned(), active.into());
        }
        if flow.kind == FlowKind::Login {
            // Only the login flow's schema has these fields.
            obj.insert("created_at".to_owned(), timestamp(flow.issued_at).into());
            obj.insert("updated_at".to_owned(), timestamp(flow.updated_at).into());
            obj.insert("refresh".to_owned(), false.into());
            obj.insert(
                "requested_aal".to_owned(),
                flow.requested_aal.as_str().into(),
            );
        }
    }
    body
}

/// The JSON schema of the identity traits (`schema_url` of every identity points here).
pub(crate) fn identity_schema() -> Value {
    json!({
        "$id": "https://schemas.ory.sh/presets/kratos/identity.email.schema.json",
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Person",
        "type": "object",
        "properties": {
            "traits": {
                "type": "object",
                "properties": {
                    "email": {
                        "type": "string",
                        "format": "email",
                        "title": "E-Mail",
                        "ory.sh/kratos": {
                            "credentials": { "password": { "identifier": true } },
                            "recovery": { "via": "email" },
                            "verification": { "via": "email" }
                        }
                    }
                },
                "required": ["email"],
                "additionalProperties": false
            }
        }
    })
}
