//! The OpenAPI 3.1 document served at `/openapi.json`, built from each
//! service's command table.
//!
//! The table ([`CommandSpec`]) is the one list of commands and their fields;
//! a test checks that every listed command is routed. A hand-built document
//! keeps the build light (no derive macros over every body) and the bodies
//! are simple flat objects.

use serde_json::{json, Map, Value};

use crate::config::ServiceName;

/// Who may send a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (the gateway checks authentication).
    Anyone,
    /// A customer acting on their own data, or the admin.
    Customer,
    /// The admin account only (`X-Actor: admin`).
    Admin,
    /// The fulfillment saga only (no `X-Actor`).
    Saga,
}

impl Access {
    fn describe(self) -> &'static str {
        match self {
            Self::Anyone => "Anyone.",
            Self::Customer => "A customer on their own data (X-Actor), or the admin.",
            Self::Admin => "The admin account only (X-Actor: admin).",
            Self::Saga => "The fulfillment saga only (sent without X-Actor).",
        }
    }
}

/// The JSON type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// A UUID string.
    Uuid,
    /// An integer.
    Integer,
    /// An RFC 3339 time.
    Time,
    /// Order lines: `[{sku, quantity}]`.
    Lines,
}

/// One field of a command's body.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Whether it must be present.
    pub required: bool,
    /// What it means.
    pub description: &'static str,
}

/// A required field.
pub const fn required(name: &'static str, kind: Kind, description: &'static str) -> Field {
    Field {
        name,
        kind,
        required: true,
        description,
    }
}

/// An optional field.
pub const fn optional(name: &'static str, kind: Kind, description: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        description,
    }
}

/// One command: `POST /commands/{name}`.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec {
    /// Its name in the path.
    pub name: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Who may send it.
    pub access: Access,
    /// What the answer's `id` is.
    pub id: &'static str,
    /// Its body's fields.
    pub fields: &'static [Field],
}

fn schema(kind: Kind) -> Value {
    match kind {
        Kind::Text => json!({"type": "string"}),
        Kind::Uuid => json!({"type": "string", "format": "uuid"}),
        Kind::Integer => json!({"type": "integer", "format": "int64"}),
        Kind::Time => json!({"type": "string", "format": "date-time"}),
        Kind::Lines => json!({
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["sku", "quantity"],
                "properties": {
                    "sku": {"type": "string"},
                    "quantity": {"type": "integer", "minimum": 1}
                }
            }
        }),
    }
}

fn body_schema(spec: &CommandSpec) -> Value {
    let mut properties = Map::new();
    for field in spec.fields {
        let mut property = schema(field.kind);
        if let Value::Object(object) = &mut property {
            object.insert("description".into(), field.description.into());
        }
        properties.insert(field.name.into(), property);
    }
    let required: Vec<&str> = spec
        .fields
        .iter()
        .filter(|field| field.required)
        .map(|field| field.name)
        .collect();
    json!({"type": "object", "required": required, "properties": properties})
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// The OpenAPI document of one service.
pub fn document(service: ServiceName, commands: &[CommandSpec]) -> Value {
    let mut paths = Map::new();
    for spec in commands {
        let operation = json!({
            "operationId": spec.name.replace('-', "_"),
            "summary": spec.summary,
            "description": format!("{} The answer's id is {}.", spec.access.describe(), spec.id),
            "parameters": [
                {"name": "Idempotency-Key", "in": "header", "required": false,
                 "description": "Same key, same answer and one effect (event ids are derived from it).",
                 "schema": {"type": "string", "maxLength": 200}},
                {"name": "X-Actor", "in": "header", "required": false,
                 "description": "`admin` or the acting customer's id; absent for the saga.",
                 "schema": {"type": "string"}},
                {"name": "X-Correlation-Id", "in": "header", "required": false, "schema": {"type": "string", "format": "uuid"}},
                {"name": "X-Causation-Id", "in": "header", "required": false, "schema": {"type": "string", "format": "uuid"}}
            ],
            "requestBody": {
                "required": true,
                "content": {"application/json": {"schema": body_schema(spec)}}
            },
            "responses": {
                "200": {
                    "description": "Accepted (or an idempotent repeat).",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CommandResult"}}}
                },
                "400": error("Invalid input; `field` names the field."),
                "403": error("The actor may not send this command."),
                "404": error("Unknown aggregate, or another customer's."),
                "409": error("A business rule refused it; `error` is the rule's code."),
                "503": error("The event store is unreachable; retry with the same Idempotency-Key.")
            }
        });
        paths.insert(
            format!("/commands/{}", spec.name),
            json!({"post": operation}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("shop {service} command service"),
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Commands are JSON over HTTP; see docs/internal-apis.md."
        },
        "paths": paths,
        "components": {
            "schemas": {
                "CommandResult": {
                    "type": "object",
                    "required": ["id", "stream", "version", "position", "token"],
                    "properties": {
                        "id": {"type": "string"},
                        "stream": {"type": "string"},
                        "version": {"type": ["integer", "null"]},
                        "position": {"type": ["integer", "null"]},
                        "token": {"type": "string", "description": "`<stream>@<version>`"}
                    }
                },
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string"}
                    }
                }
            }
        }
    })
}
