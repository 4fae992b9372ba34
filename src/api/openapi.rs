//! The OpenAPI 3.1 description of the API, written by hand.

use axum::Json;
use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn box_param() -> Value {
    json!({"name": "mailbox", "in": "path", "required": true,
           "description": "Mailbox number: 1-32 characters of [0-9A-Za-z_-].",
           "schema": {"type": "string", "pattern": "^[0-9A-Za-z_-]{1,32}$"}})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true,
           "description": "Message id: 1-64 characters of [0-9A-Za-z_-].",
           "schema": {"type": "string", "pattern": "^[0-9A-Za-z_-]{1,64}$"}})
}

fn kind_param() -> Value {
    json!({"name": "kind", "in": "path", "required": true,
           "schema": {"type": "string", "enum": ["unavailable", "busy", "temp", "name"]}})
}

/// The document served at `/api/v1/openapi.json`.
pub fn document() -> Value {
    let std_errors = json!({
        "400": error_response("Bad id, body or parameter."),
        "401": error_response("Missing or invalid bearer token."),
        "403": error_response("The token's scope does not cover this mailbox."),
        "404": error_response("No such mailbox, message or greeting.")
    });
    let with = |extra: Value| -> Value {
        let mut r = std_errors.clone();
        if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                r.insert(k.clone(), v.clone());
            }
        }
        r
    };
    // Audio messages, built apart (the macro's recursion limit).
    let name_param = json!({"name": "name", "in": "path", "required": true,
                            "schema": {"type": "string", "pattern": "^[0-9A-Za-z_-]{1,64}$"}});
    let audio_list = json!({"get": {
        "summary": "Audio messages (the named recordings dial plans play), sorted by name. Admin tokens only.",
        "responses": with(json!({"200": {"description": "Names and lengths.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["audio_messages"], "properties": {
                "audio_messages": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "duration_seconds": {"type": ["number", "null"]},
                    "audio_url": {"type": "string"}}}}}}}}}}))
    }});
    let audio_file = json!({"type": "string"});
    let audio_item = json!({
        "parameters": [name_param.clone()],
        "get": {
            "summary": "The audio message as 8 kHz mono WAV, or MP3 with format=mp3. Admin tokens only.",
            "parameters": [{"name": "format", "in": "query", "schema": {"type": "string", "enum": ["wav", "mp3"], "default": "wav"}}],
            "responses": with(json!({"200": {"description": "The audio.", "content": {
                "audio/wav": {"schema": audio_file.clone()}, "audio/mpeg": {"schema": audio_file.clone()}}}}))
        },
        "put": {
            "summary": "Upload an audio message: WAV or MP3 of any rate and channel count, decoded and stored as 8 kHz mono, replacing any of that name atomically. At most the upload limit (10 MiB) and 600 seconds. Admin tokens only.",
            "requestBody": {"required": true, "content": {
                "audio/wav": {"schema": audio_file.clone()}, "audio/mpeg": {"schema": audio_file.clone()},
                "application/octet-stream": {"schema": audio_file.clone()}}},
            "responses": with(json!({
                "200": {"description": "Stored.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AudioMessageStored"}}}},
                "400": error_response("Not decodable audio (bad_audio) or an invalid name (invalid_name)."),
                "413": error_response("Larger than the upload limit, or longer than 600 seconds.")
            }))
        },
        "delete": {"summary": "Remove the audio message. Admin tokens only.",
                   "responses": with(json!({"204": {"description": "Removed."}}))}
    });
    let audio_tts = json!({
        "parameters": [name_param],
        "post": {
            "summary": "Create or replace the audio message from text, spoken by espeak-ng (at most 2000 characters, 30 seconds of synthesis). Admin tokens only.",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": false, "required": ["text", "language"],
                "properties": {
                    "text": {"type": "string", "maxLength": 2000},
                    "language": {"type": "string", "enum": ["en", "fr", "es", "de"]},
                    "voice": {"type": "string", "description": "An espeak-ng variant, e.g. m3, f2."}}}}}},
            "responses": with(json!({
                "200": {"description": "Stored.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AudioMessageStored"}}}},
                "400": error_response("Empty text, unknown language or voice."),
                "413": error_response("Text longer than 2000 characters."),
                "503": error_response("espeak-ng is not installed (tts_unavailable) or took too long (tts_timeout).")
            }))
        }
    });
    // Mailbox management, built apart like the audio messages.
    let create_op = json!({
        "summary": "Create a mailbox (admin). It takes calls, lamps and email at once and is kept in <data>/mailboxes/<box>/mailbox.toml; the PIN only as its Argon2id hash.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "allOf": [{"$ref": "#/components/schemas/MailboxSettings"}], "required": ["number", "pin"],
            "properties": {"number": {"type": "string", "pattern": "^[0-9A-Za-z_-]{1,32}$"}}}}}},
        "responses": with(json!({
            "201": {"description": "Created (Location: the box).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Mailbox"}}}},
            "409": error_response("A mailbox with this number exists.")
        }))
    });
    let patch_op = json!({
        "summary": "Change a box's settings (admin, or the box's own token or session; limits and sharing are admin-only). null puts a key back to config.toml's value or the default. A config.toml box gets an override file.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MailboxSettings"}}}},
        "responses": with(json!({"200": {"description": "The box after the change.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Mailbox"}}}}}))
    });
    let delete_op = json!({
        "summary": "Delete a box created through the API (admin): its folder with every message and greeting, its PIN and lockout state. Each message gets its deleted event; lamps go off; calls for it get 404.",
        "responses": with(json!({
            "204": {"description": "Deleted."},
            "409": error_response("The box is defined in config.toml: remove it there.")
        }))
    });
    let mailbox_settings = json!({"type": "object", "additionalProperties": false,
                    "description": "The [[mailbox]] keys of config.toml; unknown keys, bad values and a PIN that breaks the PIN rules are 400s.",
                    "properties": {
                        "pin": {"type": "string", "description": "4-12 digits, not the box number; stored only hashed."},
                        "name": {"type": "string"},
                        "language": {"type": ["string", "null"], "enum": ["en", "fr", "es", "de", null]},
                        "email": {"type": ["string", "null"]}, "attach_audio": {"type": ["boolean", "null"]},
                        "delete_after_email": {"type": ["boolean", "null"]},
                        "timezone": {"type": ["string", "null"], "description": "IANA name."},
                        "ask_password": {"type": ["boolean", "null"]},
                        "format": {"type": ["string", "null"]}, "attach_format": {"type": ["string", "null"]},
                        "max_messages": {"type": ["integer", "null"], "minimum": 1, "maximum": 9999, "description": "Admin only."},
                        "max_message_seconds": {"type": ["integer", "null"], "minimum": 1, "maximum": 3600, "description": "Admin only."},
                        "shared": {"type": ["boolean", "null"], "description": "Admin only."},
                        "members": {"type": ["array", "null"], "items": {"type": "string"}, "description": "Admin only; needs shared."},
                        "per_member_read": {"type": ["boolean", "null"], "description": "Admin only; needs shared."}}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "voxmail",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Mailboxes, messages, greetings and events of a voxmail server. \
                Every /api/v1 route except login and openapi.json needs \
                `Authorization: Bearer <token>`: a token from the [http] section of the \
                configuration (scope admin or a list of boxes), or a session token from \
                POST /api/v1/login. Errors are {\"error\": {\"code\", \"message\"}}."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/login": {"post": {
                "summary": "Sign in with a mailbox number and its PIN; returns a session token scoped to that box.",
                "security": [],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["mailbox", "pin"], "additionalProperties": false,
                    "properties": {"mailbox": {"type": "string"}, "pin": {"type": "string"}}}}}},
                "responses": {
                    "200": {"description": "Signed in.", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["token", "mailbox", "expires_in"],
                        "properties": {"token": {"type": "string"}, "mailbox": {"type": "string"},
                                       "expires_in": {"type": "integer", "description": "seconds"}}}}}},
                    "400": error_response("Malformed body."),
                    "401": error_response("Wrong mailbox or PIN."),
                    "429": error_response("Too many wrong PINs: the box is locked for a while (Retry-After).")
                }
            }},
            "/api/v1/logout": {"post": {
                "summary": "End the session whose token is presented.",
                "responses": {"204": {"description": "Signed out."}, "401": error_response("Not a session token.")}
            }},
            "/api/v1/mailboxes": {
                "get": {
                    "summary": "The mailboxes the token may see: its own, and the shared boxes it is a member of (all of them for admin).",
                    "responses": with(json!({"200": {"description": "Mailboxes.", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"mailboxes": {"type": "array", "items": {"$ref": "#/components/schemas/Mailbox"}}}}}}}}))
                },
                "post": create_op
            },
            "/api/v1/mailboxes/{mailbox}": {
                "parameters": [box_param()],
                "get": {"summary": "One mailbox with its message counts and greetings.",
                        "responses": with(json!({"200": {"description": "The mailbox.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Mailbox"}}}}}))},
                "patch": patch_op,
                "delete": delete_op
            },
            "/api/v1/mailboxes/{mailbox}/messages": {
                "parameters": [box_param()],
                "get": {
                    "summary": "Messages of a folder, newest first, paged.",
                    "parameters": [
                        {"name": "folder", "in": "query", "schema": {"type": "string", "enum": ["inbox", "old", "saved", "all"], "default": "inbox"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                        {"name": "unread", "in": "query", "description": "true: only unheard (inbox) messages; false: only heard ones. In a shared box with per_member_read, as the asking member heard them.", "schema": {"type": "boolean"}},
                        {"name": "voicemail_type", "in": "query", "description": "personal: this box's messages; global: those of the shared boxes it is a member of; all: both. Each message says its mailbox.", "schema": {"type": "string", "enum": ["personal", "global", "all"], "default": "personal"}}
                    ],
                    "responses": with(json!({"200": {"description": "A page of messages.", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["mailbox", "folder", "total", "offset", "limit", "messages"],
                        "properties": {
                            "mailbox": {"type": "string"}, "folder": {"type": "string"},
                            "total": {"type": "integer", "description": "Messages matching, all pages."},
                            "offset": {"type": "integer"}, "limit": {"type": "integer"},
                            "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}}}}}}}))
                }
            },
            "/api/v1/mailboxes/{mailbox}/messages/{id}": {
                "parameters": [box_param(), id_param()],
                "get": {"summary": "A message's metadata.",
                        "responses": with(json!({"200": {"description": "The message.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}}}))},
                "patch": {
                    "summary": "Move a message or change its read state. read=true moves an inbox message to old (heard); read=false moves it back to the inbox. A member of a shared box with per_member_read marks it for themselves only (heard_by); a folder move is for everyone.",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "additionalProperties": false, "minProperties": 1,
                        "properties": {"folder": {"type": "string", "enum": ["inbox", "old", "saved"]}, "read": {"type": "boolean"}}}}}},
                    "responses": with(json!({"200": {"description": "The message after the change.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}}}))
                },
                "delete": {"summary": "Delete a message (audio and metadata).",
                           "responses": with(json!({"204": {"description": "Deleted."}}))}
            },
            "/api/v1/mailboxes/{mailbox}/messages/{id}/audio": {
                "parameters": [box_param(), id_param()],
                "get": {
                    "summary": "The message's audio as 8 kHz mono WAV (16-bit) or MP3: the stored file when the box keeps that format, else the stored one transcoded. Supports a single Range: bytes=...",
                    "parameters": [
                        {"name": "format", "in": "query", "description": "Default: the message's first stored format (wav when kept). mp3 from a WAV-only message needs a build with the mp3 feature.", "schema": {"type": "string", "enum": ["wav", "mp3"]}},
                        {"name": "Range", "in": "header", "schema": {"type": "string", "examples": ["bytes=0-1023"]}}
                    ],
                    "responses": with(json!({
                        "200": {"description": "The whole file (audio/wav or audio/mpeg).", "content": {"audio/*": {"schema": {"type": "string"}}}},
                        "206": {"description": "The requested range (Content-Range).", "content": {"audio/*": {"schema": {"type": "string"}}}},
                        "416": error_response("The range is outside the file (Content-Range: bytes */length).")
                    }))
                }
            },
            "/api/v1/mailboxes/{mailbox}/greetings/{kind}": {
                "parameters": [box_param(), kind_param()],
                "get": {"summary": "The greeting as 8 kHz mono WAV.",
                        "responses": with(json!({"200": {"description": "The greeting.", "content": {"audio/wav": {"schema": {"type": "string", "contentMediaType": "audio/wav"}}}}}))},
                "put": {
                    "summary": "Upload a greeting: WAV or MP3 of any rate and channel count, decoded and stored as 8 kHz mono. At most 10 MiB and 600 seconds.",
                    "requestBody": {"required": true, "content": {
                        "audio/wav": {"schema": {"type": "string", "contentMediaType": "audio/wav"}},
                        "audio/mpeg": {"schema": {"type": "string", "contentMediaType": "audio/mpeg"}},
                        "application/octet-stream": {"schema": {"type": "string"}}}},
                    "responses": with(json!({
                        "200": {"description": "Stored.", "content": {"application/json": {"schema": {"type": "object", "properties": {
                            "mailbox": {"type": "string"}, "kind": {"type": "string"},
                            "sample_rate": {"type": "integer"}, "duration_seconds": {"type": "number"}}}}}},
                        "413": error_response("Larger than the upload limit, or longer than 600 seconds.")
                    }))
                },
                "delete": {"summary": "Remove the greeting.",
                           "responses": with(json!({"204": {"description": "Removed."}}))}
            },
            "/api/v1/audio-messages": audio_list,
            "/api/v1/audio-messages/{name}": audio_item,
            "/api/v1/audio-messages/{name}/tts": audio_tts,
            "/api/v1/events": {"get": {
                "summary": "Server-sent events for the boxes the token may see: `ready` first, then voicemail_message_created, voicemail_message_updated and voicemail_message_deleted, each with an Event as data and its sequence number as id.",
                "responses": {
                    "200": {"description": "An event stream.", "content": {"text/event-stream": {"itemSchema": {"$ref": "#/components/schemas/Event"}}}},
                    "401": error_response("Missing or invalid bearer token.")
                }
            }},
            "/api/v1/calls": {"get": {
                "summary": "Live calls with their media statistics so far (admin tokens only).",
                "responses": with(json!({"200": {"description": "Live calls, oldest first.", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["count", "calls"], "properties": {
                        "count": {"type": "integer"},
                        "calls": {"type": "array", "items": {"$ref": "#/components/schemas/Call"}}}}}}}}))
            }},
            "/api/v1/calls/{call_id}": {"get": {
                "summary": "One call by its SIP Call-ID, live or ended in the last 10 minutes (the newest 20,000 ended calls): RTP received and sent by payload type, loss, jitter, DTMF digits with their source, and the messages it left with their SHA-256. Admin tokens only. Counters of a live call are at most a second old; after hang-up they are final once `state` is `ended`.",
                "parameters": [{"name": "call_id", "in": "path", "required": true,
                    "description": "The SIP Call-ID (percent-encoded in the path): 1-256 visible ASCII characters.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 256}}],
                "responses": with(json!({
                    "200": {"description": "The call.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Call"}}}},
                    "400": error_response("Not a valid Call-ID (invalid_call_id)."),
                    "403": error_response("Not an admin token."),
                    "404": error_response("No live or recently ended call has this Call-ID.")}))
            }},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document.", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {}}}}
            }},
            "/healthz": {"get": {
                "summary": "Liveness.", "security": [],
                "responses": {"200": {"description": "Up.", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "status": {"const": "ok"}, "version": {"type": "string"}, "uptime_seconds": {"type": "integer"}}}}}}}
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics: voxmail_messages_recorded_total, voxmail_active_calls, voxmail_calls_total{outcome}, voxmail_rtp_packets_total{direction}, voxmail_rtp_packets_lost_total, voxmail_media_late_ticks_total, voxmail_playback_underruns_total, voxmail_sip_responses_total{code}, voxmail_dtmf_total{source: rfc4733, sip_info, inband}, voxmail_uptime_seconds.",
                "security": [],
                "responses": {"200": {"description": "Text exposition format 0.0.4.", "content": {"text/plain": {}}}}
            }}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string", "description": "Stable: unauthorized, forbidden, not_found, invalid_id, invalid_call_id, invalid_request, invalid_folder, invalid_greeting_kind, invalid_name, unsupported_format, bad_audio, tts_unavailable, tts_timeout, payload_too_large, range_not_satisfiable, locked, conflict, mailbox_full, method_not_allowed, internal."},
                        "message": {"type": "string"}}}}},
                "AudioMessageStored": {"type": "object", "required": ["name", "sample_rate", "duration_seconds", "audio_url"],
                    "properties": {"name": {"type": "string"}, "sample_rate": {"type": "integer"},
                                   "duration_seconds": {"type": "number"}, "audio_url": {"type": "string"}}},
                "Message": {"type": "object",
                    "required": ["id", "mailbox", "folder", "caller_number", "called_number", "received_at", "duration_seconds", "unread", "audio_url"],
                    "properties": {
                        "id": {"type": "string"}, "mailbox": {"type": "string"},
                        "folder": {"type": "string", "enum": ["inbox", "old", "saved"]},
                        "caller_number": {"type": "string"}, "caller_name": {"type": ["string", "null"]},
                        "called_number": {"type": "string"},
                        "received_at": {"type": "string", "format": "date-time"},
                        "duration_seconds": {"type": "number"},
                        "codec": {"type": "string"}, "call_id": {"type": "string"},
                        "format": {"type": "string"}, "sample_rate": {"type": "integer"},
                        "unread": {"type": "boolean", "description": "Not heard: in the inbox and, in a shared box with per_member_read, not heard by the asking member."},
                        "voicemail_type": {"type": "string", "enum": ["personal", "global"], "description": "global: the message is in a shared box."},
                        "heard_by": {"type": "array", "items": {"type": "string"}, "description": "Shared box with per_member_read: the members who heard it."},
                        "audio_url": {"type": "string"}}},
                "Mailbox": {"type": "object", "required": ["number", "name", "messages", "greetings"],
                    "properties": {
                        "number": {"type": "string"}, "name": {"type": "string"}, "language": {"type": "string"},
                        "email": {"type": ["string", "null"]}, "attach_audio": {"type": "boolean"},
                        "delete_after_email": {"type": "boolean"}, "timezone": {"type": "string"},
                        "ask_password": {"type": "boolean"},
                        "format": {"type": "string"}, "attach_format": {"type": "string"},
                        "max_messages": {"type": ["integer", "null"], "description": "Inbox + old; null: no limit of its own."},
                        "max_message_seconds": {"type": "integer", "description": "The box's, or [voicemail] max_message_seconds."},
                        "shared": {"type": "boolean"}, "members": {"type": "array", "items": {"type": "string"}},
                        "per_member_read": {"type": "boolean"},
                        "origin": {"type": "string", "enum": ["config", "api"]},
                        "messages": {"type": "object", "properties": {"inbox": {"type": "integer"}, "old": {"type": "integer"}, "saved": {"type": "integer"}}},
                        "greetings": {"type": "object", "properties": {"unavailable": {"type": "boolean"}, "busy": {"type": "boolean"}, "temp": {"type": "boolean"}, "name": {"type": "boolean"}}}}},
                "MailboxSettings": mailbox_settings,
                "Call": {"type": "object",
                    "required": ["call_id", "from", "to", "state", "started_at", "duration_s", "rtp", "dtmf", "dtmf_by_source", "messages"],
                    "properties": {
                        "call_id": {"type": "string"},
                        "from": {"type": "string", "description": "Caller (From user)."},
                        "to": {"type": "string", "description": "Dialed number (Request-URI user)."},
                        "state": {"type": "string", "enum": ["active", "ending", "ended"],
                                  "description": "ending: hung up, media counters not final yet (milliseconds)."},
                        "outcome": {"type": ["string", "null"], "description": "How it ended, as in voxmail_calls_total: completed, caller_hung_up, cancelled, no_ack, media_timeout, ..."},
                        "started_at": {"type": "string", "format": "date-time", "description": "INVITE accepted."},
                        "answered_at": {"type": ["string", "null"], "format": "date-time", "description": "ACK received."},
                        "ended_at": {"type": ["string", "null"], "format": "date-time"},
                        "duration_s": {"type": "number", "description": "From answer to hang-up (or now); 0 if never answered."},
                        "rtp": {"type": "object", "properties": {
                            "received": {"$ref": "#/components/schemas/RtpCounts"},
                            "sent": {"$ref": "#/components/schemas/RtpCounts"},
                            "lost": {"type": "integer", "description": "Audio packets declared lost by the jitter buffer."},
                            "ignored": {"type": "integer", "description": "Datagrams that were not RTP or of a payload type not negotiated."},
                            "underruns": {"type": "integer", "description": "20 ms frames of a message played from its file that were not read in time and went out as silence."},
                            "jitter_ms": {"type": "number", "description": "RFC 3550 interarrival jitter of the received audio, from the kernel's receive timestamps (or, where a socket gives none, the time the media worker read the packet)."}}},
                        "dtmf": {"type": "array", "description": "The first 32 digits.", "items": {"type": "object", "properties": {
                            "digit": {"type": "string"},
                            "source": {"type": "string", "enum": ["rfc4733", "sip_info", "inband"]},
                            "at_ms": {"type": "integer", "description": "Milliseconds after the INVITE was accepted (media clock)."}}}},
                        "dtmf_by_source": {"type": "object", "properties": {
                            "rfc4733": {"type": "integer"}, "sip_info": {"type": "integer"}, "inband": {"type": "integer"}}},
                        "messages": {"type": "array", "items": {"type": "object", "properties": {
                            "mailbox": {"type": "string"}, "id": {"type": "string"},
                            "audio_seconds": {"type": "number"},
                            "sha256": {"type": ["string", "null"], "description": "Of the stored audio file (hex), taken when the call is first shown; null if the file is gone."}}}}}},
                "RtpCounts": {"type": "object", "properties": {
                    "packets": {"type": "integer"}, "bytes": {"type": "integer", "description": "Whole RTP datagrams (header included)."},
                    "by_payload_type": {"type": "array", "items": {"type": "object", "properties": {
                        "pt": {"type": "integer"}, "packets": {"type": "integer"}, "bytes": {"type": "integer"}}}}}},
                "Event": {"type": "object", "required": ["event", "seq", "at", "mailbox", "message"],
                    "properties": {
                        "event": {"type": "string", "enum": ["voicemail_message_created", "voicemail_message_updated", "voicemail_message_deleted",
                                                              "global_voicemail_message_created", "global_voicemail_message_updated", "global_voicemail_message_deleted"],
                                  "description": "global_...: the message is in a shared box."},
                        "member": {"type": "string", "description": "A member's own read state changed (per_member_read)."},
                        "heard_by": {"type": "array", "items": {"type": "string"}},
                        "seq": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
                        "mailbox": {"type": "string"},
                        "message": {"$ref": "#/components/schemas/Message", "description": "Without unread and audio_url."},
                        "previous_folder": {"type": "string", "enum": ["inbox", "old", "saved"]}}}
            }
        },
        "webhooks": {
            "voicemailEvent": {"post": {
                "summary": "Each [[webhook]] receives every Event as JSON, with X-Voxmail-Event (the event name) and X-Voxmail-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>. Non-2xx answers are retried after 1, 2 and 4 seconds.",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}}},
                "responses": {"200": {"description": "Any 2xx acknowledges the event."}}
            }}
        }
    })
}

pub async fn handler() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` points at a schema that exists.
    #[test]
    fn refs_resolve() {
        let doc = document();
        let mut refs = Vec::new();
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        if k == "$ref" {
                            out.push(v.as_str().unwrap().to_owned());
                        } else {
                            walk(v, out);
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&doc, &mut refs);
        assert!(refs.len() > 5);
        for r in refs {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(doc["components"]["schemas"].get(name).is_some(), "{r}");
        }
    }
}
