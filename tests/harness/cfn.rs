//! CloudFormation templates as tests read them: a template of `infra/` as
//! JSON, and [`Stack`], the template with parameter values, its intrinsic
//! functions (`Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::Join`, `Fn::If`) and
//! conditions resolved the way CloudFormation would.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::{ACCOUNT_ID, REGION};

/// The text of a file of `infra/`.
pub fn infra_file(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/").to_owned() + name;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A template as JSON. The templates use the long form of intrinsic functions
/// (`Ref`, `Fn::Sub`), so plain YAML reads them.
pub fn template(name: &str) -> Value {
    serde_yaml::from_str(&infra_file(name)).unwrap_or_else(|e| panic!("infra/{name} is not YAML: {e}"))
}

/// A template with parameter values: resolves `Ref`, `Fn::Sub`, `Fn::GetAtt`,
/// `Fn::Join`, `Fn::If` and conditions the way CloudFormation would, with
/// fixed, predictable physical names for the stack's resources.
pub struct Stack<'a> {
    template: &'a Value,
    name: String,
    parameters: BTreeMap<String, String>,
}

impl<'a> Stack<'a> {
    /// Panics if a parameter without a default is not given, or an unknown one is.
    pub fn new(template: &'a Value, name: &str, given: &[(&str, &str)]) -> Self {
        let declared = template["Parameters"].as_object().cloned().unwrap_or_default();
        let mut parameters = BTreeMap::new();
        for (key, declaration) in &declared {
            let default = match &declaration["Default"] {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Null => None,
                other => panic!("parameter {key} has a default of an unexpected kind: {other}"),
            };
            if let Some(default) = default {
                parameters.insert(key.clone(), default);
            }
        }
        for (key, value) in given {
            assert!(declared.contains_key(*key), "the template has no parameter {key}");
            parameters.insert(key.to_string(), value.to_string());
        }
        for key in declared.keys() {
            assert!(
                parameters.contains_key(key),
                "parameter {key} has no default and was not given"
            );
        }
        Self {
            template,
            name: name.to_owned(),
            parameters,
        }
    }

    pub fn resource(&self, logical: &str) -> &'a Value {
        let resource = &self.template["Resources"][logical];
        assert!(resource.is_object(), "the template has no resource {logical}");
        resource
    }

    pub fn resource_type(&self, logical: &str) -> &'a str {
        self.resource(logical)["Type"].as_str().expect("a resource has a Type")
    }

    /// Logical ids of the resources of a type.
    pub fn resources_of_type(&self, kind: &str) -> Vec<&'a str> {
        let resources = self.template["Resources"].as_object().expect("Resources");
        resources
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    pub fn property(&self, logical: &str, name: &str) -> Value {
        self.resolve(&self.resource(logical)["Properties"][name])
    }

    pub fn string(&self, value: &Value) -> String {
        match self.resolve(value) {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => panic!("{value} resolves to {other}, not a string"),
        }
    }

    /// What `Ref` gives for a resource.
    pub fn reference(&self, logical: &str) -> String {
        let stack = &self.name;
        let named = |property: &str, fallback: String| match &self.resource(logical)["Properties"][property] {
            Value::Null => fallback,
            name => self.string(name),
        };
        match self.resource_type(logical) {
            "AWS::S3::Bucket" => named("BucketName", format!("{stack}-{}", logical.to_lowercase())),
            "AWS::DynamoDB::Table" => named("TableName", format!("{stack}-{logical}")),
            "AWS::KMS::Key" => "0a1b2c3d-0000-4000-8000-00000000000a".to_owned(),
            "AWS::KMS::Alias" => named("AliasName", format!("alias/{stack}-{logical}")),
            "AWS::SNS::Topic" => format!("arn:aws:sns:{REGION}:{ACCOUNT_ID}:{stack}-{logical}"),
            "AWS::SQS::Queue" => format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{stack}-{logical}"),
            "AWS::IAM::Role" => named("RoleName", format!("{stack}-{logical}")),
            "AWS::Lambda::Function" => named("FunctionName", format!("{stack}-{logical}")),
            "AWS::Logs::LogGroup" => named("LogGroupName", format!("{stack}-{logical}")),
            "AWS::Events::Rule" => named("Name", format!("{stack}-{logical}")),
            _ => format!("{stack}-{logical}"),
        }
    }

    /// What `Fn::GetAtt` gives.
    pub fn attribute(&self, logical: &str, attribute: &str) -> String {
        let reference = self.reference(logical);
        let stack = &self.name;
        match (self.resource_type(logical), attribute) {
            ("AWS::S3::Bucket", "Arn") => format!("arn:aws:s3:::{reference}"),
            ("AWS::DynamoDB::Table", "Arn") => format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{reference}"),
            ("AWS::KMS::Key", "Arn") => format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{reference}"),
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{stack}-{logical}"),
            ("AWS::SQS::Queue", "QueueName") => format!("{stack}-{logical}"),
            ("AWS::IAM::Role", "Arn") => {
                let path = match &self.resource(logical)["Properties"]["Path"] {
                    Value::Null => "/".to_owned(),
                    path => self.string(path),
                };
                format!("arn:aws:iam::{ACCOUNT_ID}:role{path}{reference}")
            }
            ("AWS::Lambda::Function", "Arn") => format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{reference}"),
            ("AWS::Logs::LogGroup", "Arn") => format!("arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{reference}:*"),
            ("AWS::Events::Rule", "Arn") => format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{reference}"),
            (kind, attribute) => panic!("Fn::GetAtt {logical}.{attribute}: not modelled for {kind}"),
        }
    }

    /// A `${NAME}` of `Fn::Sub`, or the target of a `Ref`.
    fn variable(&self, name: &str) -> Value {
        match name {
            "AWS::Partition" => return json!("aws"),
            "AWS::AccountId" => return json!(ACCOUNT_ID),
            "AWS::Region" => return json!(REGION),
            "AWS::StackName" => return json!(self.name),
            "AWS::URLSuffix" => return json!("amazonaws.com"),
            "AWS::NoValue" => return Value::Null,
            _ => {}
        }
        if let Some(value) = self.parameters.get(name) {
            let kind = &self.template["Parameters"][name]["Type"];
            if kind == "CommaDelimitedList" {
                let items: Vec<&str> = if value.is_empty() {
                    vec![""]
                } else {
                    value.split(',').collect()
                };
                return json!(items);
            }
            return json!(value);
        }
        if let Some((logical, attribute)) = name.split_once('.') {
            return json!(self.attribute(logical, attribute));
        }
        json!(self.reference(name))
    }

    fn substitute(&self, text: &str, locals: &serde_json::Map<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(literal) = after.strip_prefix('!') {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after.find('}').unwrap_or_else(|| panic!("unclosed ${{ in {text}"));
            let name = &after[..end];
            let value = match locals.get(name) {
                Some(local) => self.resolve(local),
                None => self.variable(name),
            };
            match value {
                Value::String(s) => out.push_str(&s),
                other => panic!("${{{name}}} in Fn::Sub is {other}, not a string"),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    pub fn condition(&self, name: &str) -> bool {
        let condition = &self.template["Conditions"][name];
        assert!(!condition.is_null(), "the template has no condition {name}");
        self.holds(condition)
    }

    fn holds(&self, condition: &Value) -> bool {
        let (function, arguments) = single_key(condition).unwrap_or_else(|| panic!("not a condition: {condition}"));
        match function {
            "Fn::Equals" => self.resolve(&arguments[0]) == self.resolve(&arguments[1]),
            "Fn::Not" => !self.holds(&arguments[0]),
            "Fn::And" => arguments
                .as_array()
                .expect("Fn::And list")
                .iter()
                .all(|c| self.holds(c)),
            "Fn::Or" => arguments.as_array().expect("Fn::Or list").iter().any(|c| self.holds(c)),
            "Condition" => self.condition(arguments.as_str().expect("a condition name")),
            other => panic!("unknown condition function {other}"),
        }
    }

    /// The value CloudFormation would pass to the resource. `AWS::NoValue`
    /// becomes `null` and is dropped from objects and lists.
    pub fn resolve(&self, value: &Value) -> Value {
        if let Some((function, arguments)) = single_key(value) {
            match function {
                "Ref" => return self.variable(arguments.as_str().expect("Ref takes a name")),
                "Fn::Sub" => {
                    let (text, locals) = match arguments {
                        Value::String(text) => (text.as_str(), serde_json::Map::new()),
                        Value::Array(pair) => (
                            pair[0].as_str().expect("Fn::Sub text"),
                            pair[1].as_object().cloned().expect("Fn::Sub variables"),
                        ),
                        other => panic!("Fn::Sub of {other}"),
                    };
                    return json!(self.substitute(text, &locals));
                }
                "Fn::GetAtt" => {
                    let (logical, attribute) = match arguments {
                        Value::Array(pair) => (
                            pair[0].as_str().expect("GetAtt resource").to_owned(),
                            pair[1].as_str().expect("GetAtt attribute").to_owned(),
                        ),
                        Value::String(dotted) => {
                            let (l, a) = dotted.split_once('.').expect("Fn::GetAtt Resource.Attribute");
                            (l.to_owned(), a.to_owned())
                        }
                        other => panic!("Fn::GetAtt of {other}"),
                    };
                    return json!(self.attribute(&logical, &attribute));
                }
                "Fn::Join" => {
                    let separator = arguments[0].as_str().expect("Fn::Join separator");
                    let items = self.resolve(&arguments[1]);
                    let items: Vec<String> = items
                        .as_array()
                        .expect("Fn::Join list")
                        .iter()
                        .map(|item| item.as_str().expect("Fn::Join of strings").to_owned())
                        .collect();
                    return json!(items.join(separator));
                }
                "Fn::If" => {
                    let name = arguments[0].as_str().expect("Fn::If condition name");
                    let branch = if self.condition(name) {
                        &arguments[1]
                    } else {
                        &arguments[2]
                    };
                    return self.resolve(branch);
                }
                _ if function.starts_with("Fn::") => panic!("{function} is not modelled by the test's resolver"),
                _ => {}
            }
        }
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v)))
                    .filter(|(_, v)| !v.is_null())
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.resolve(v)).filter(|v| !v.is_null()).collect())
            }
            other => other.clone(),
        }
    }

    /// Every identity policy document that applies to a role: its inline
    /// `Policies` and the `AWS::IAM::Policy` resources attached to it.
    pub fn role_policies(&self, role: &str) -> Vec<Value> {
        let properties = &self.resource(role)["Properties"];
        assert!(
            self.resolve(&properties["ManagedPolicyArns"]).is_null(),
            "{role} has managed policies; the test cannot see what they allow"
        );
        let mut documents: Vec<Value> = properties["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| self.resolve(&p["PolicyDocument"]))
            .collect();
        for kind in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"] {
            for logical in self.resources_of_type(kind) {
                // A resource whose condition is false is not created.
                if let Some(condition) = self.resource(logical)["Condition"].as_str() {
                    if !self.condition(condition) {
                        continue;
                    }
                }
                let attached = &self.resource(logical)["Properties"];
                let roles = attached["Roles"].as_array().cloned().unwrap_or_default();
                let names_role = roles.contains(&json!({"Ref": role})) || attached["RoleName"] == json!({"Ref": role});
                if names_role {
                    documents.push(self.resolve(&attached["PolicyDocument"]));
                }
            }
        }
        assert!(!documents.is_empty(), "{role} has no policy at all");
        documents
    }
}

fn single_key(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.iter().next().map(|(k, v)| (k.as_str(), v))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Value {
        json!({
            "Parameters": {
                "Env": {"Type": "String", "Default": "prod"},
                "Subnets": {"Type": "CommaDelimitedList", "Default": ""},
                "Owner": {"Type": "String"}
            },
            "Conditions": {
                "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
                "HasSubnets": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": [",", {"Ref": "Subnets"}]}, ""]}]}
            },
            "Resources": {
                "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {
                    "BucketName": {"Fn::Sub": "${AWS::StackName}-${Env}-data"},
                    "Tags": [{"Fn::If": ["IsProd", {"Key": "tier", "Value": "1"}, {"Ref": "AWS::NoValue"}]}]
                }},
                "Role": {"Type": "AWS::IAM::Role", "Properties": {"Path": "/lifeboat/"}},
                "Key": {"Type": "AWS::KMS::Key", "Properties": {
                    "Description": {"Fn::Sub": ["${Key.Arn} for ${Who} ${!Literal}", {"Who": {"Ref": "Owner"}}]},
                    "Policy": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Subnets": {"Fn::If": ["HasSubnets", {"Ref": "Subnets"}, {"Ref": "AWS::NoValue"}]}
                }}
            }
        })
    }

    #[test]
    fn intrinsic_functions_resolve_as_cloudformation_would() {
        let template = sample();
        let stack = Stack::new(&template, "s", &[("Owner", "ops")]);
        assert_eq!(stack.reference("Bucket"), "s-prod-data");
        assert_eq!(stack.attribute("Bucket", "Arn"), "arn:aws:s3:::s-prod-data");
        assert_eq!(stack.property("Bucket", "Tags"), json!([{"Key": "tier", "Value": "1"}]));
        assert_eq!(
            stack.property("Key", "Policy"),
            json!(format!("arn:aws:iam::{ACCOUNT_ID}:role/lifeboat/s-Role"))
        );
        assert!(
            stack.property("Key", "Subnets").is_null(),
            "AWS::NoValue drops the property"
        );
        assert!(!stack.condition("HasSubnets"));

        let staging = Stack::new(&template, "s", &[("Owner", "ops"), ("Env", "dev"), ("Subnets", "a,b")]);
        assert_eq!(
            staging.property("Bucket", "Tags"),
            json!([]),
            "AWS::NoValue leaves lists"
        );
        assert_eq!(staging.property("Key", "Subnets"), json!(["a", "b"]));
    }

    #[test]
    fn sub_takes_local_variables_and_literals() {
        let template = sample();
        let stack = Stack::new(&template, "s", &[("Owner", "ops")]);
        assert_eq!(
            stack.string(&stack.resource("Key")["Properties"]["Description"]),
            format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0a1b2c3d-0000-4000-8000-00000000000a for ops ${{Literal}}")
        );
    }

    #[test]
    #[should_panic(expected = "parameter Owner has no default and was not given")]
    fn a_parameter_without_default_must_be_given() {
        let template = sample();
        Stack::new(&template, "s", &[]);
    }
}
