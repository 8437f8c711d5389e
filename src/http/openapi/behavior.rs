//! Field behaviour (`google.api.field_behavior`): which fields are
//! required, output only, input only, immutable, identifiers or unordered,
//! as the document must tell (`readOnly`, `writeOnly`, notes).

use prost_reflect::{DescriptorPool, ExtensionDescriptor, FieldDescriptor};

/// The full name of the field behaviour annotation.
const FIELD_BEHAVIOR_EXTENSION: &str = "google.api.field_behavior";

/// What a field's `google.api.field_behavior` says.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Behavior {
    pub(super) required: bool,
    pub(super) output_only: bool,
    pub(super) input_only: bool,
    pub(super) immutable: bool,
    pub(super) identifier: bool,
    pub(super) unordered: bool,
}

impl Behavior {
    /// The behaviours that the schema cannot say itself, as sentences.
    pub(super) fn note(self) -> Option<String> {
        let notes: Vec<&str> = [
            (self.identifier, "Identifier: names the resource."),
            (
                self.immutable,
                "Immutable: set at creation; changing it later is rejected.",
            ),
            (self.required, "Required."),
            (self.output_only, "Output only: ignored in requests."),
            (self.input_only, "Input only: never returned."),
            (
                self.unordered,
                "The order of the elements is not significant.",
            ),
        ]
        .into_iter()
        .filter_map(|(set, note)| set.then_some(note))
        .collect();
        (!notes.is_empty()).then(|| notes.join(" "))
    }
}

/// Reads field behaviour through the pool's `google.api.field_behavior`
/// extension; a pool without it gives every field the default behaviour.
pub(super) struct FieldBehaviors(Option<ExtensionDescriptor>);

impl FieldBehaviors {
    /// The reader of `pool`'s annotation.
    pub(super) fn new(pool: &DescriptorPool) -> Self {
        Self(pool.get_extension_by_name(FIELD_BEHAVIOR_EXTENSION))
    }

    /// What `field`'s annotation says.
    pub(super) fn of(&self, field: &FieldDescriptor) -> Behavior {
        let mut behavior = Behavior::default();
        let Some(extension) = &self.0 else {
            return behavior;
        };
        let options = field.options();
        if !options.has_extension(extension) {
            return behavior;
        }
        let value = options.get_extension(extension);
        let kind = extension.kind();
        let (Some(values), Some(names)) = (value.as_list(), kind.as_enum()) else {
            return behavior;
        };
        for number in values.iter().filter_map(|value| value.as_enum_number()) {
            match names.get_value(number).as_ref().map(|value| value.name()) {
                Some("REQUIRED") => behavior.required = true,
                Some("OUTPUT_ONLY") => behavior.output_only = true,
                Some("INPUT_ONLY") => behavior.input_only = true,
                Some("IMMUTABLE") => behavior.immutable = true,
                Some("IDENTIFIER") => behavior.identifier = true,
                Some("UNORDERED_LIST") => behavior.unordered = true,
                _ => {}
            }
        }
        behavior
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::http::openapi::tests::{contract, schema};

    #[test]
    fn output_only_fields_are_read_only() {
        let document = contract();
        let read_only: BTreeSet<&str> = schema(&document, "Group")["properties"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, property)| property["readOnly"] == true)
            .map(|(name, _)| name.as_str())
            .collect();
        // `etag` is not among them: clients send it back to make a write
        // conditional. Nor is `name`, which they set.
        let expected = [
            "createTime",
            "createdBy",
            "deleteTime",
            "memberCount",
            "permissions",
            "state",
            "updateTime",
            "updatedBy",
        ];
        assert_eq!(read_only, BTreeSet::from(expected));
    }
}
