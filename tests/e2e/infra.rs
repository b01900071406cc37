//! The infrastructure templates of `infra/`.
//!
//! The emulator's CloudFormation is only a smoke test (shared/EMULATOR.md):
//! it skips some resource types and ignores many properties. So:
//! - the properties it ignores (Object Lock, versioning, public access block,
//!   TLS-only policy, PITR, key rotation, architecture, dead-letter queue…) are
//!   asserted on the template itself, read as YAML;
//! - what each function's role may and may not do is proven by a small IAM
//!   policy evaluator over the template's policies, with the template's
//!   intrinsic functions resolved for fixed parameter values;
//! - the template is deployed into the emulator with create-stack and what
//!   the emulator does create is checked, then the stack is deleted.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use aws_sdk_s3::primitives::ByteStream;
use lifeboat_e2e::{dynamodb_client, kms_client, s3_client, sdk_config, unique, ACCOUNT_ID, REGION};
use serde_json::{json, Value};

use self::policy::{evaluate, Decision, Request};

// ---------------------------------------------------------------------------
// Reading templates and resolving their intrinsic functions
// ---------------------------------------------------------------------------

fn infra_file(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/").to_owned() + name;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A template as JSON. The templates use the long form of intrinsic functions
/// (`Ref`, `Fn::Sub`), so plain YAML reads them.
fn template(name: &str) -> Value {
    serde_yaml::from_str(&infra_file(name)).unwrap_or_else(|e| panic!("infra/{name} is not YAML: {e}"))
}

fn sample_event(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/").to_owned() + name;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// A template with parameter values: resolves `Ref`, `Fn::Sub`, `Fn::GetAtt`,
/// `Fn::Join`, `Fn::If` and conditions the way CloudFormation would, with
/// fixed, predictable physical names for the stack's resources.
struct Stack<'a> {
    template: &'a Value,
    name: String,
    parameters: BTreeMap<String, String>,
}

impl<'a> Stack<'a> {
    /// Panics if a parameter without a default is not given, or an unknown one is.
    fn new(template: &'a Value, name: &str, given: &[(&str, &str)]) -> Self {
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

    fn resource(&self, logical: &str) -> &'a Value {
        let resource = &self.template["Resources"][logical];
        assert!(resource.is_object(), "the template has no resource {logical}");
        resource
    }

    fn resource_type(&self, logical: &str) -> &'a str {
        self.resource(logical)["Type"].as_str().expect("a resource has a Type")
    }

    /// Logical ids of the resources of a type.
    fn resources_of_type(&self, kind: &str) -> Vec<&'a str> {
        let resources = self.template["Resources"].as_object().expect("Resources");
        resources
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    fn property(&self, logical: &str, name: &str) -> Value {
        self.resolve(&self.resource(logical)["Properties"][name])
    }

    fn string(&self, value: &Value) -> String {
        match self.resolve(value) {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => panic!("{value} resolves to {other}, not a string"),
        }
    }

    /// What `Ref` gives for a resource.
    fn reference(&self, logical: &str) -> String {
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
    fn attribute(&self, logical: &str, attribute: &str) -> String {
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

    fn condition(&self, name: &str) -> bool {
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
    fn resolve(&self, value: &Value) -> Value {
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
    fn role_policies(&self, role: &str) -> Vec<Value> {
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

// ---------------------------------------------------------------------------
// A small IAM policy evaluator
// ---------------------------------------------------------------------------

/// Enough of IAM's policy evaluation to answer "may this principal do this
/// action on this resource": Allow/Deny statements, `Action`/`NotAction`,
/// `Resource`/`NotResource`, `Principal` (key policies, bucket policies), the
/// `*` and `?` wildcards, and the condition operators the templates use.
/// An explicit deny wins, then an allow, else the request is implicitly denied.
/// What it does not model (permission boundaries, SCPs, sessions, IAM's
/// delegation through the account root in key policies) the templates do not use.
mod policy {
    use serde_json::Value;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Decision {
        Allow,
        ImplicitDeny,
        ExplicitDeny,
    }

    #[derive(Debug, Clone)]
    pub struct Request {
        pub action: String,
        pub resource: String,
        /// The caller, for resource policies (key and bucket policies): an
        /// IAM ARN, or `service:NAME` for a service principal.
        pub principal: Option<String>,
        /// Condition keys and their values in this request.
        pub context: Vec<(String, String)>,
    }

    impl Request {
        pub fn new(action: &str, resource: &str) -> Self {
            Self {
                action: action.to_owned(),
                resource: resource.to_owned(),
                principal: None,
                context: Vec::new(),
            }
        }

        pub fn by(mut self, principal: &str) -> Self {
            self.principal = Some(principal.to_owned());
            self
        }

        pub fn with(mut self, key: &str, value: &str) -> Self {
            self.context.push((key.to_owned(), value.to_owned()));
            self
        }
    }

    pub fn evaluate(policies: &[Value], request: &Request) -> Decision {
        let mut allowed = false;
        for policy in policies {
            for statement in statements(policy) {
                if !applies(statement, request) {
                    continue;
                }
                match statement["Effect"].as_str() {
                    Some("Deny") => return Decision::ExplicitDeny,
                    Some("Allow") => allowed = true,
                    other => panic!("statement with Effect {other:?}: {statement}"),
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }

    fn statements(policy: &Value) -> Vec<&Value> {
        match &policy["Statement"] {
            Value::Array(list) => list.iter().collect(),
            Value::Object(_) => vec![&policy["Statement"]],
            other => panic!("a policy's Statement is {other}"),
        }
    }

    fn strings(value: &Value) -> Vec<String> {
        match value {
            Value::String(s) => vec![s.clone()],
            Value::Bool(b) => vec![b.to_string()],
            Value::Number(n) => vec![n.to_string()],
            Value::Array(items) => items.iter().flat_map(strings).collect(),
            other => panic!("expected a string or a list of strings, found {other}"),
        }
    }

    fn either(statement: &Value, positive: &str, negative: &str, matches: impl Fn(&str) -> bool) -> bool {
        match (&statement[positive], &statement[negative]) {
            (p, Value::Null) if !p.is_null() => strings(p).iter().any(|pattern| matches(pattern)),
            (Value::Null, n) if !n.is_null() => !strings(n).iter().any(|pattern| matches(pattern)),
            _ => panic!("a statement needs exactly one of {positive} and {negative}: {statement}"),
        }
    }

    fn applies(statement: &Value, request: &Request) -> bool {
        let action = either(statement, "Action", "NotAction", |p| wildcard(p, &request.action, true));
        let resource = either(statement, "Resource", "NotResource", |p| {
            wildcard(p, &request.resource, false)
        });
        action && resource && principal_matches(statement, request) && conditions_hold(statement, request)
    }

    fn principal_matches(statement: &Value, request: &Request) -> bool {
        let principal = &statement["Principal"];
        if principal.is_null() {
            // An identity policy: it applies to whoever holds it.
            return true;
        }
        let Some(caller) = &request.principal else {
            panic!("a resource policy's statement needs a request with a principal: {statement}");
        };
        if principal == "*" {
            return true;
        }
        let map = principal.as_object().expect("Principal is \"*\" or an object");
        map.iter().any(|(kind, names)| {
            strings(names).iter().any(|name| match kind.as_str() {
                "AWS" => name == "*" || name == caller,
                "Service" => format!("service:{name}") == *caller,
                other => panic!("principal kind {other} is not modelled"),
            })
        })
    }

    fn conditions_hold(statement: &Value, request: &Request) -> bool {
        let Some(conditions) = statement["Condition"].as_object() else {
            return true;
        };
        conditions.iter().all(|(operator, keys)| {
            let keys = keys.as_object().expect("a condition maps keys to values");
            keys.iter()
                .all(|(key, values)| condition_holds(operator, key, &strings(values), request))
        })
    }

    fn condition_holds(operator: &str, key: &str, values: &[String], request: &Request) -> bool {
        // ForAllValues: every value of the key in the request matches (each
        // request here carries one value); a request without the key matches.
        let (operator, for_all) = match operator.strip_prefix("ForAllValues:") {
            Some(operator) => (operator, true),
            None => (operator, false),
        };
        let (base, if_exists) = match operator.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (operator, false),
        };
        let actual = request
            .context
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .or_else(|| principal_key(key, request));
        let Some(actual) = actual else {
            // A key the request lacks: no condition holds but the negated ones.
            return for_all || if_exists || base.contains("Not");
        };
        let equal = || values.iter().any(|v| v == actual);
        let like = || values.iter().any(|v| wildcard(v, actual, false));
        match base {
            "StringEquals" | "ArnEquals" => equal(),
            "StringNotEquals" | "ArnNotEquals" => !equal(),
            "StringLike" | "ArnLike" => like(),
            "StringNotLike" | "ArnNotLike" => !like(),
            "StringEqualsIgnoreCase" => values.iter().any(|v| v.eq_ignore_ascii_case(actual)),
            "Bool" => values.iter().any(|v| v.eq_ignore_ascii_case(actual)),
            other => panic!("condition operator {other} is not modelled"),
        }
    }

    /// The keys IAM sets from the caller itself: `aws:PrincipalArn` (the
    /// caller's ARN) and `aws:PrincipalAccount` (its account).
    fn principal_key<'r>(key: &str, request: &'r Request) -> Option<&'r str> {
        let principal = request.principal.as_deref().filter(|p| p.starts_with("arn:"))?;
        if key.eq_ignore_ascii_case("aws:PrincipalArn") {
            Some(principal)
        } else if key.eq_ignore_ascii_case("aws:PrincipalAccount") {
            principal.split(':').nth(4)
        } else {
            None
        }
    }

    /// IAM's wildcards: `*` any run of characters (also none), `?` exactly one.
    pub fn wildcard(pattern: &str, text: &str, ignore_case: bool) -> bool {
        let fold = |s: &str| -> Vec<char> {
            if ignore_case {
                s.to_lowercase().chars().collect()
            } else {
                s.chars().collect()
            }
        };
        let (pattern, text) = (fold(pattern), fold(text));
        // Greedy matching with backtracking to the last `*`.
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
                p += 1;
                t += 1;
            } else if p < pattern.len() && pattern[p] == '*' {
                star = Some((p, t));
                p += 1;
            } else if let Some((star_p, star_t)) = star {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            } else {
                return false;
            }
        }
        pattern[p..].iter().all(|c| *c == '*')
    }
}

#[test]
fn policy_wildcards() {
    let cases = [
        ("*", "", true),
        ("*", "anything", true),
        ("s3:Get*", "s3:GetObject", true),
        ("s3:Get*", "s3:PutObject", false),
        ("s3:?etObject", "s3:GetObject", true),
        ("s3:?etObject", "s3:SetObject", true),
        ("s3:?etObject", "s3:GetObjects", false),
        ("s3:?etObject", "s3:etObject", false),
        ("arn:aws:s3:::b/lifeboat/*", "arn:aws:s3:::b/lifeboat/packs/ab/cd", true),
        ("arn:aws:s3:::b/lifeboat/*", "arn:aws:s3:::b/lifeboat", false),
        ("arn:aws:s3:::b/lifeboat/*", "arn:aws:s3:::b/other/x", false),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("a*c", "abcbc", true),
        ("??", "ab", true),
        ("??", "abc", false),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(
            policy::wildcard(pattern, text, false),
            expected,
            "{pattern:?} ~ {text:?}"
        );
    }
    assert!(
        policy::wildcard("S3:getobject", "s3:GetObject", true),
        "actions ignore case"
    );
    assert!(
        !policy::wildcard("arn:aws:s3:::B/*", "arn:aws:s3:::b/k", false),
        "resources do not"
    );
}

#[test]
fn policy_evaluation() {
    let identity = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:Get*", "s3:PutObject"], "Resource": "arn:aws:s3:::b/store/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
         "Condition": {"StringLike": {"s3:prefix": ["store", "store/*"]}}},
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["kms:ScheduleKeyDeletion", "kms:Disable*"], "Resource": "*"},
        {"Effect": "Deny", "NotAction": ["s3:*", "kms:*"], "Resource": "*"},
    ]});
    let policies = [identity];
    let cases = [
        (
            Request::new("s3:GetObject", "arn:aws:s3:::b/store/config"),
            Decision::Allow,
        ),
        (
            Request::new("s3:getobjecttagging", "arn:aws:s3:::b/store/x"),
            Decision::Allow,
        ),
        (
            Request::new("s3:PutObject", "arn:aws:s3:::b/store/packs/1"),
            Decision::Allow,
        ),
        (
            Request::new("s3:DeleteObject", "arn:aws:s3:::b/store/packs/1"),
            Decision::ImplicitDeny,
        ),
        (
            Request::new("s3:GetObject", "arn:aws:s3:::b/elsewhere"),
            Decision::ImplicitDeny,
        ),
        (
            Request::new("s3:GetObject", "arn:aws:s3:::other/store/x"),
            Decision::ImplicitDeny,
        ),
        (
            Request::new("s3:ListBucket", "arn:aws:s3:::b").with("s3:prefix", "store/index/"),
            Decision::Allow,
        ),
        (
            Request::new("s3:ListBucket", "arn:aws:s3:::b").with("s3:prefix", "elsewhere/"),
            Decision::ImplicitDeny,
        ),
        // A condition on a key the request lacks does not hold.
        (Request::new("s3:ListBucket", "arn:aws:s3:::b"), Decision::ImplicitDeny),
        (Request::new("kms:Decrypt", "arn:aws:kms:r:1:key/k"), Decision::Allow),
        (
            Request::new("kms:ScheduleKeyDeletion", "arn:aws:kms:r:1:key/k"),
            Decision::ExplicitDeny,
        ),
        (
            Request::new("kms:DisableKey", "arn:aws:kms:r:1:key/k"),
            Decision::ExplicitDeny,
        ),
        (
            Request::new("dynamodb:DeleteTable", "arn:aws:dynamodb:r:1:table/t"),
            Decision::ExplicitDeny,
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(evaluate(&policies, &request), expected, "{request:?}");
    }
    assert_eq!(
        evaluate(&[], &Request::new("s3:GetObject", "*")),
        Decision::ImplicitDeny,
        "no policy allows nothing"
    );

    // Resource policies: principals and Bool conditions.
    let resource = json!({"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::1:role/a"]}, "Action": "kms:Decrypt", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com"}, "Action": "kms:Encrypt", "Resource": "*"},
        {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]});
    let policies = [resource];
    let decrypt = || Request::new("kms:Decrypt", "*");
    assert_eq!(
        evaluate(&policies, &decrypt().by("arn:aws:iam::1:role/a")),
        Decision::Allow
    );
    assert_eq!(
        evaluate(&policies, &decrypt().by("arn:aws:iam::1:role/b")),
        Decision::ImplicitDeny
    );
    assert_eq!(
        evaluate(
            &policies,
            &Request::new("kms:Encrypt", "*").by("service:logs.amazonaws.com")
        ),
        Decision::Allow
    );
    assert_eq!(
        evaluate(
            &policies,
            &decrypt()
                .by("arn:aws:iam::1:role/a")
                .with("aws:SecureTransport", "false")
        ),
        Decision::ExplicitDeny
    );
    assert_eq!(
        evaluate(
            &policies,
            &decrypt()
                .by("arn:aws:iam::1:role/a")
                .with("aws:SecureTransport", "true")
        ),
        Decision::Allow
    );
}

// ---------------------------------------------------------------------------
// The primary template, read
// ---------------------------------------------------------------------------

const STACK: &str = "lifeboat";
const OPERATOR_ROLE: &str = "arn:aws:iam::123456789012:role/lifeboat-operator";
/// The DR region and key the snapshot function copies to.
const DR_REGION: &str = "us-west-2";
const DR_KEY: &str = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// Parameters for the resolved template: the source of
/// events/file-backup-scheduled.json, the policy of
/// events/retention-scheduled.json.
fn primary_parameters() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CodeBucket", "lifeboat-code"),
        ("OperatorRoleArn", OPERATOR_ROLE),
        ("PlanName", "app-nightly"),
        ("SourceBucket", "lifeboat-demo-data"),
        ("SourcePrefix", "app"),
        (
            "RetentionRules",
            r#"{"keepLast": 3, "daily": 7, "weekly": 5, "monthly": 12, "timezone": "Europe/Berlin"}"#,
        ),
        ("SnapshotCopyRegion", DR_REGION),
        ("SnapshotCopyKeyArn", DR_KEY),
    ]
}

/// The functions the template deploys, each with its role and log group.
const FUNCTIONS: [(&str, &str, &str); 5] = [
    ("FileBackupFunction", "FileBackupRole", "FileBackupLogGroup"),
    ("VerifyFunction", "VerifyRole", "VerifyLogGroup"),
    ("RetentionFunction", "RetentionRole", "RetentionLogGroup"),
    ("AlertFunction", "AlertRole", "AlertLogGroup"),
    ("SnapshotFunction", "SnapshotRole", "SnapshotLogGroup"),
];

fn props(resource: &Value) -> &Value {
    &resource["Properties"]
}

#[test]
fn primary_template_keeps_backups_immutable_encrypted_and_private() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let key_arn = stack.attribute("StoreKey", "Arn");
    let bucket_arn = stack.attribute("BackupBucket", "Arn");

    // The bucket: Object Lock in compliance mode for the retention parameter,
    // versioning, no public access, SSE-KMS with the store key.
    let bucket = props(stack.resource("BackupBucket"));
    assert_eq!(bucket["ObjectLockEnabled"], true);
    assert_eq!(bucket["ObjectLockConfiguration"]["ObjectLockEnabled"], "Enabled");
    let retention = &bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"];
    assert_eq!(retention["Mode"], "COMPLIANCE");
    assert_eq!(retention["Days"], json!({"Ref": "ObjectLockRetentionDays"}));
    assert_eq!(template["Parameters"]["ObjectLockRetentionDays"]["Type"], "Number");
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    let block = &bucket["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting], true, "{setting}");
    }
    let encryption = stack.property("BackupBucket", "BucketEncryption");
    let default = &encryption["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"];
    assert_eq!(default["SSEAlgorithm"], "aws:kms");
    assert_eq!(default["KMSMasterKeyID"], key_arn.as_str());
    for retained in ["BackupBucket", "CatalogTable", "StoreKey"] {
        assert_eq!(stack.resource(retained)["DeletionPolicy"], "Retain", "{retained}");
    }

    // Lifecycle: what garbage collection deletes leaves a locked noncurrent
    // version; it expires no sooner than its lock ends (it became noncurrent
    // after it was written, and the lock runs from the write).
    let rules = bucket["LifecycleConfiguration"]["Rules"]
        .as_array()
        .expect("lifecycle rules");
    let reclaim = rules
        .iter()
        .find(|r| !r["NoncurrentVersionExpiration"].is_null())
        .expect("a rule expiring noncurrent versions");
    assert_eq!(reclaim["Status"], "Enabled");
    assert_eq!(
        reclaim["NoncurrentVersionExpiration"]["NoncurrentDays"],
        json!({"Ref": "ObjectLockRetentionDays"})
    );
    assert!(
        reclaim["Prefix"].is_null() && reclaim["Filter"].is_null(),
        "the whole bucket"
    );
    let abort = rules
        .iter()
        .find(|r| !r["AbortIncompleteMultipartUpload"].is_null())
        .expect("a rule aborting incomplete multipart uploads");
    assert_eq!(abort["Status"], "Enabled");
    assert!(
        abort["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
            .as_u64()
            .unwrap()
            <= 7
    );
    for rule in rules {
        assert!(
            rule["ExpirationInDays"].is_null() && rule["ExpirationDate"].is_null(),
            "no current version expires"
        );
        assert!(rule["Transitions"].is_null(), "no transitions (Object Lock, restores)");
    }

    // TLS only: every request to the bucket or its objects over plain HTTP
    // is denied, whoever makes it.
    let policies: Vec<Value> = stack
        .resources_of_type("AWS::S3::BucketPolicy")
        .into_iter()
        .filter(|p| props(stack.resource(p))["Bucket"] == json!({"Ref": "BackupBucket"}))
        .map(|p| stack.property(p, "PolicyDocument"))
        .collect();
    assert_eq!(policies.len(), 1, "one bucket policy for the backup bucket");
    let anyone = "arn:aws:iam::123456789012:role/lifeboat-operator";
    for (action, resource) in [
        ("s3:GetObject", format!("{bucket_arn}/lifeboat/config")),
        ("s3:PutObject", format!("{bucket_arn}/x")),
        ("s3:ListBucket", bucket_arn.clone()),
    ] {
        let plain = Request::new(action, &resource)
            .by(anyone)
            .with("aws:SecureTransport", "false");
        assert_eq!(
            evaluate(&policies, &plain),
            Decision::ExplicitDeny,
            "{action} over HTTP"
        );
        let tls = Request::new(action, &resource)
            .by(anyone)
            .with("aws:SecureTransport", "true");
        assert_ne!(evaluate(&policies, &tls), Decision::ExplicitDeny, "{action} over TLS");
    }

    // The catalog: the library's key schema and both indexes, on demand,
    // point-in-time recovery, deletion protection, the store key.
    let table = stack.property("CatalogTable", "TableName");
    assert_eq!(table, lifeboat::catalog::DEFAULT_TABLE, "the toolkit's default table");
    let table = props(stack.resource("CatalogTable"));
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["DeletionProtectionEnabled"], true);
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    );
    // The index names and keys of crates/lifeboat/src/catalog.rs.
    let indexes: BTreeMap<String, Value> = table["GlobalSecondaryIndexes"]
        .as_array()
        .expect("GSIs")
        .iter()
        .map(|i| (i["IndexName"].as_str().unwrap().to_owned(), i.clone()))
        .collect();
    for (name, hash, range) in [("bySource", "gsi1pk", "gsi1sk"), ("byTime", "gsi2pk", "gsi2sk")] {
        let index = &indexes[name];
        assert_eq!(
            index["KeySchema"],
            json!([{"AttributeName": hash, "KeyType": "HASH"}, {"AttributeName": range, "KeyType": "RANGE"}]),
            "{name}"
        );
        assert_eq!(index["Projection"]["ProjectionType"], "ALL", "{name}");
    }
    assert_eq!(indexes.len(), 2);
    let sse = stack.property("CatalogTable", "SSESpecification");
    assert_eq!(sse["SSEEnabled"], true);
    assert_eq!(sse["SSEType"], "KMS");
    assert_eq!(sse["KMSMasterKeyId"], key_arn.as_str());

    // The key rotates; the topic and the dead-letter queue are encrypted.
    assert_eq!(props(stack.resource("StoreKey"))["EnableKeyRotation"], true);
    assert_eq!(
        stack.property("StoreKeyAlias", "TargetKeyId"),
        json!(stack.reference("StoreKey"))
    );
    assert_eq!(stack.property("AlertsTopic", "KmsMasterKeyId"), key_arn.as_str());
    assert_eq!(stack.property("DeadLetterQueue", "KmsMasterKeyId"), key_arn.as_str());
    assert_eq!(
        stack.resource("AlertsEmailSubscription")["Condition"],
        "HasAlertEmail",
        "the email subscription is optional"
    );
    assert!(!stack.condition("HasAlertEmail"), "no email by default");

    // Outputs.
    for output in [
        "CatalogTableName",
        "BackupBucketName",
        "StoreKeyArn",
        "AlertsTopicArn",
        "FileBackupFunctionArn",
        "FileBackupRoleArn",
        "VerifyFunctionArn",
        "VerifyRoleArn",
        "RetentionFunctionArn",
        "RetentionRoleArn",
        "AlertFunctionArn",
        "AlertRoleArn",
    ] {
        assert!(template["Outputs"][output].is_object(), "output {output}");
    }
}

#[test]
fn every_function_is_arm64_with_its_own_role_a_dead_letter_queue_and_alarms() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let mut functions = stack.resources_of_type("AWS::Lambda::Function");
    functions.sort();
    let mut expected: Vec<&str> = FUNCTIONS.iter().map(|(f, _, _)| *f).collect();
    expected.sort();
    assert_eq!(functions, expected, "the functions the template deploys");
    let mut roles = Vec::new();
    for function in functions {
        let properties = props(stack.resource(function));
        assert_eq!(properties["Runtime"], "provided.al2023", "{function}");
        assert_eq!(properties["Architectures"], json!(["arm64"]), "{function}");
        assert_eq!(properties["Handler"], "bootstrap", "{function}");
        assert_eq!(
            properties["Code"]["S3Bucket"],
            json!({"Ref": "CodeBucket"}),
            "{function}"
        );
        let role = properties["Role"]["Fn::GetAtt"][0]
            .as_str()
            .expect("the role is the stack's");
        assert!(!roles.contains(&role), "{function} shares its role {role}");
        roles.push(role);
        let queue = properties["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{function} has no dead-letter queue"));
        assert_eq!(stack.resource_type(queue), "AWS::SQS::Queue");
        assert!(
            !props(stack.resource(queue))["KmsMasterKeyId"].is_null(),
            "{queue} is encrypted"
        );

        let invoke_configs: Vec<&str> = stack
            .resources_of_type("AWS::Lambda::EventInvokeConfig")
            .into_iter()
            .filter(|c| props(stack.resource(c))["FunctionName"] == json!({"Ref": function}))
            .collect();
        assert_eq!(invoke_configs.len(), 1, "{function} has one EventInvokeConfig");
        assert_eq!(
            props(stack.resource(invoke_configs[0]))["MaximumRetryAttempts"],
            json!({"Ref": "MaximumRetryAttempts"})
        );

        let alarmed: Vec<String> = stack
            .resources_of_type("AWS::CloudWatch::Alarm")
            .into_iter()
            .map(|a| props(stack.resource(a)))
            .filter(|a| a["Dimensions"][0]["Value"] == json!({"Ref": function}))
            .inspect(|a| assert_eq!(a["AlarmActions"], json!([{"Ref": "AlertsTopic"}])))
            .map(|a| a["MetricName"].as_str().unwrap().to_owned())
            .collect();
        assert!(alarmed.contains(&"Errors".to_owned()), "{function}: {alarmed:?}");
        assert!(alarmed.contains(&"Throttles".to_owned()), "{function}: {alarmed:?}");

        // Its package is its own parameter (scripts/deploy's FUNCTIONS).
        let code_key = properties["Code"]["S3Key"]["Ref"]
            .as_str()
            .expect("the package key is a parameter");
        assert_eq!(code_key, format!("{}CodeKey", function.trim_end_matches("Function")));
        // Encrypted settings, a JSON log group of its own, its own role policy.
        assert_eq!(
            stack.property(function, "KmsKeyArn"),
            stack.attribute("StoreKey", "Arn").as_str(),
            "{function}"
        );
        let (_, _, log_group) = FUNCTIONS.iter().find(|(f, _, _)| *f == function).unwrap();
        assert_eq!(
            properties["LoggingConfig"]["LogGroup"],
            json!({"Ref": log_group}),
            "{function}"
        );
        assert_eq!(properties["LoggingConfig"]["LogFormat"], "JSON", "{function}");
        assert!(!props(stack.resource(log_group))["KmsKeyId"].is_null(), "{log_group}");
        assert_eq!(
            props(stack.resource(log_group))["RetentionInDays"],
            json!({"Ref": "LogRetentionDays"})
        );
        let policy_resource = format!("{}Policy", function.trim_end_matches("Function"));
        assert_eq!(stack.resource_type(&policy_resource), "AWS::IAM::Policy");
        assert_eq!(props(stack.resource(&policy_resource))["Roles"], json!([{"Ref": role}]));
        assert_eq!(
            stack.resource(function)["DependsOn"],
            policy_resource.as_str(),
            "{function}"
        );

        // Its settings resolve to what the function accepts.
        let environment = stack.property(function, "Environment")["Variables"].clone();
        let names: Vec<&str> = environment.as_object().unwrap().keys().map(String::as_str).collect();
        let expected: &[&str] = match function {
            "FileBackupFunction" => &[
                "LIFEBOAT_CONCURRENCY",
                "LIFEBOAT_KMS_KEY",
                "LIFEBOAT_PLANS",
                "LIFEBOAT_STORE",
                "LIFEBOAT_TABLE",
            ],
            "VerifyFunction" => &["LIFEBOAT_PLANS", "LIFEBOAT_STORE", "LIFEBOAT_TABLE"],
            "RetentionFunction" => &["LIFEBOAT_DRY_RUN", "LIFEBOAT_PLANS", "LIFEBOAT_STORE", "LIFEBOAT_TABLE"],
            "AlertFunction" => &["LIFEBOAT_ALERT_TOPIC_ARN", "LIFEBOAT_PLANS", "LIFEBOAT_TABLE"],
            "SnapshotFunction" => &["LIFEBOAT_KMS_KEY", "LIFEBOAT_PLANS", "LIFEBOAT_STORE", "LIFEBOAT_TABLE"],
            other => panic!("no expected settings for {other}"),
        };
        assert_eq!(names, expected, "{function}");
        assert_eq!(environment["LIFEBOAT_TABLE"], stack.reference("CatalogTable").as_str());
        if let Some(store) = environment["LIFEBOAT_STORE"].as_str() {
            lifeboat::storage::Location::parse(store).unwrap_or_else(|e| panic!("LIFEBOAT_STORE={store}: {e}"));
        }
        if !environment["LIFEBOAT_KMS_KEY"].is_null() {
            assert_eq!(
                environment["LIFEBOAT_KMS_KEY"],
                stack.attribute("StoreKey", "Arn").as_str()
            );
        }
    }
    let environment = |function: &str| stack.property(function, "Environment")["Variables"].clone();
    assert_eq!(environment("RetentionFunction")["LIFEBOAT_DRY_RUN"], "false");
    assert_eq!(
        environment("AlertFunction")["LIFEBOAT_ALERT_TOPIC_ARN"],
        stack.reference("AlertsTopic").as_str()
    );
    let plans = environment("SnapshotFunction")["LIFEBOAT_PLANS"].clone();
    assert_eq!(plans, "s3://lifeboat-code/lifeboat/plans.toml");
    lifeboat::snapshot::PlanSource::parse(plans.as_str().unwrap()).expect("the function reads LIFEBOAT_PLANS");

    // The alert function failing means alerts may be lost: alarmed at the
    // first error, straight to the topic.
    let alert_errors = props(stack.resource("AlertErrorsAlarm"));
    assert_eq!(alert_errors["MetricName"], "Errors");
    assert_eq!(alert_errors["Dimensions"][0]["Value"], json!({"Ref": "AlertFunction"}));
    assert_eq!(alert_errors["Threshold"], 1);
    assert_eq!(alert_errors["ComparisonOperator"], "GreaterThanOrEqualToThreshold");
    assert_eq!(alert_errors["Statistic"], "Sum");
    assert_eq!(alert_errors["AlarmActions"], json!([{"Ref": "AlertsTopic"}]));
    // Reserved concurrency only when asked for.
    assert!(stack
        .property("FileBackupFunction", "ReservedConcurrentExecutions")
        .is_null());
    let reserved = Stack::new(
        &template,
        STACK,
        &[primary_parameters(), vec![("ReservedConcurrency", "5")]].concat(),
    );
    assert_eq!(
        reserved.property("FileBackupFunction", "ReservedConcurrentExecutions"),
        "5"
    );

    // The dead-letter queue's depth is alarmed.
    let depth = stack
        .resources_of_type("AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|a| props(stack.resource(a)))
        .find(|a| a["MetricName"] == "ApproximateNumberOfMessagesVisible")
        .expect("a dead-letter queue alarm");
    assert_eq!(depth["Namespace"], "AWS/SQS");
    assert_eq!(depth["AlarmActions"], json!([{"Ref": "AlertsTopic"}]));
}

/// Renders an EventBridge input transformer for an event, as EventBridge does.
fn render_input(transformer: &Value, event: &Value) -> Value {
    let mut text = transformer["InputTemplate"].as_str().expect("InputTemplate").to_owned();
    for (name, path) in transformer["InputPathsMap"].as_object().expect("InputPathsMap") {
        let field = path.as_str().unwrap().strip_prefix("$.").expect("a top-level path");
        let value = &event[field];
        let quoted = format!("\"<{name}>\"");
        text = match value {
            Value::String(s) if text.contains(&quoted) => text.replace(&format!("<{name}>"), s),
            other => text.replace(&format!("<{name}>"), &other.to_string()),
        };
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the rendered input is not JSON ({e}): {text}"))
}

#[test]
fn the_schedule_sends_the_shape_of_the_sample_scheduled_event() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let store = format!("s3://{}/lifeboat", stack.reference("BackupBucket"));
    let by_parameter = |name: &str| json!({"Ref": name});
    let schedules = [
        (
            "Verify",
            by_parameter("VerifyScheduleExpression"),
            "verify-scheduled.json",
        ),
        (
            "Retention",
            by_parameter("RetentionScheduleExpression"),
            "retention-scheduled.json",
        ),
        ("Alert", by_parameter("AlertScheduleExpression"), "alert-scheduled.json"),
        (
            "VerifySnapshots",
            by_parameter("VerifyScheduleExpression"),
            "verify-snapshots.json",
        ),
        (
            "RetentionSnapshots",
            by_parameter("RetentionScheduleExpression"),
            "retention-snapshots.json",
        ),
        // The scheduled restore tests advance every 15 minutes.
        (
            "VerifyRestoreTests",
            json!("rate(15 minutes)"),
            "verify-restore-tests.json",
        ),
    ];
    let mut rules = stack.resources_of_type("AWS::Events::Rule");
    rules.sort();
    let mut expected_rules: Vec<String> = schedules.iter().map(|(f, _, _)| format!("{f}Schedule")).collect();
    // And rules for events: RDS's snapshot events, to the snapshot function;
    // S3's Object Created, to file-backup. The plans' own schedules are the
    // generated stack's (lifeboat plan schedules), not rules here.
    expected_rules.push("SnapshotRdsEvents".to_owned());
    expected_rules.push("FileBackupObjectCreated".to_owned());
    expected_rules.sort();
    assert_eq!(rules, expected_rules, "one schedule per function, and the event rules");
    let mut rendered_events = BTreeMap::new();
    for (function, expression, sample_name) in schedules {
        let rule_name = format!("{function}Schedule");
        let rule = props(stack.resource(&rule_name));
        assert_eq!(rule["ScheduleExpression"], expression, "{rule_name}");
        let targets = stack.property(&rule_name, "Targets");
        assert_eq!(targets.as_array().unwrap().len(), 1, "{rule_name}");
        let target = &targets[0];
        let target_function = function
            .strip_suffix("Snapshots")
            .or_else(|| function.strip_suffix("RestoreTests"))
            .unwrap_or(function);
        assert_eq!(
            target["Arn"],
            stack.attribute(&format!("{target_function}Function"), "Arn").as_str()
        );
        assert_eq!(
            target["DeadLetterConfig"]["Arn"],
            stack.attribute("DeadLetterQueue", "Arn").as_str(),
            "{rule_name}"
        );
        let sample = sample_event(sample_name);
        let rendered = render_input(&target["InputTransformer"], &sample);
        // The envelope is the event's own, whatever the function.
        for field in [
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
        ] {
            assert_eq!(rendered[field], sample[field], "{rule_name}: {field}");
        }
        rendered_events.insert(function, (rendered, sample));

        // The function's permission names the rule; the dead-letter queue
        // takes the rule's undeliverable events.
        let permission = stack.property(&format!("{function}SchedulePermission"), "SourceArn");
        assert_eq!(permission, stack.attribute(&rule_name, "Arn").as_str());
        let queue_policy = stack.property("DeadLetterQueuePolicy", "PolicyDocument");
        let sources = &queue_policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"];
        assert!(
            sources
                .as_array()
                .unwrap()
                .contains(&json!(stack.attribute(&rule_name, "Arn"))),
            "the dead-letter queue accepts {rule_name}'s events: {sources}"
        );
    }

    // verify's restore tests: the sample as it is.
    let (rendered, sample) = &rendered_events["VerifyRestoreTests"];
    assert_eq!(rendered, sample);

    // verify: the sample, with the stack's store.
    let (rendered, sample) = &rendered_events["Verify"];
    let mut expected = sample.clone();
    expected["detail"]["store"] = json!(store);
    assert_eq!(rendered, &expected);

    // retention: the sample (its source is the plan's, as backups record it:
    // s3://BUCKET/PREFIX/), with the stack's store.
    let (rendered, sample) = &rendered_events["Retention"];
    let mut expected = sample.clone();
    expected["detail"]["store"] = json!(store);
    assert_eq!(rendered, &expected);
    let policy: lifeboat::retention::RetentionPolicy =
        serde_json::from_value(rendered["detail"]["policy"].clone()).expect("the library reads the policy");
    assert!(policy.has_rules());
    // A whole-bucket plan is recorded as s3://BUCKET/.
    let whole = Stack::new(
        &template,
        STACK,
        &[primary_parameters(), vec![("SourcePrefix", "")]].concat(),
    );
    let target = &whole.property("RetentionSchedule", "Targets")[0];
    let rendered_whole = render_input(&target["InputTransformer"], sample);
    assert_eq!(rendered_whole["detail"]["source"], "s3://lifeboat-demo-data/");

    // The snapshot plan's verification and retention: the samples, for the stack's plan.
    for function in ["VerifySnapshots", "RetentionSnapshots"] {
        let (rendered, sample) = &rendered_events[function];
        assert_eq!(rendered, sample, "{function}");
    }

    // alert: the sample's shape, with the plan as its one source; the
    // library reads the rules.
    let (rendered, sample) = &rendered_events["Alert"];
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&rendered["detail"]), keys(&sample["detail"]));
    assert_eq!(
        keys(&rendered["detail"]["sources"][0]),
        keys(&sample["detail"]["sources"][0])
    );
    assert_eq!(
        rendered["detail"]["sources"],
        json!([{"source": "s3://lifeboat-demo-data/app/", "plan": "app-nightly", "maxAgeHours": 26, "tier": "critical"}])
    );
    assert_eq!(rendered["detail"]["digest"], false);
    let mut rules = rendered["detail"].clone();
    rules.as_object_mut().unwrap().remove("digest");
    let rules: lifeboat::alert::AlertRules = serde_json::from_value(rules).expect("the library reads the rules");
    assert_eq!(rules.sources.len(), 1);
    assert_eq!(rules.sources[0].plan.as_deref(), Some("app-nightly"));
}

/// The RDS events rule sends RDS's snapshot events about Lifeboat's
/// snapshots (the samples) as they are, and no others.
#[test]
fn the_rds_events_rule_matches_lifeboats_snapshot_events() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let pattern = stack.property("SnapshotRdsEvents", "EventPattern");
    // What EventBridge matches here: source, detail-type, a prefix of
    // detail.SourceIdentifier.
    let matches = |event: &Value| {
        let listed = |field: &Value, value: &Value| field.as_array().is_some_and(|l| l.contains(value));
        let prefix = pattern["detail"]["SourceIdentifier"][0]["prefix"]
            .as_str()
            .expect("a prefix");
        listed(&pattern["source"], &event["source"])
            && listed(&pattern["detail-type"], &event["detail-type"])
            && event["detail"]["SourceIdentifier"]
                .as_str()
                .is_some_and(|id| id.starts_with(prefix))
    };
    for sample_name in ["rds-db-snapshot-event.json", "rds-cluster-snapshot-event.json"] {
        let sample = sample_event(sample_name);
        assert!(matches(&sample), "{sample_name}");
        let mut automated = sample.clone();
        automated["detail"]["SourceIdentifier"] = json!("rds:orders-2026-11-23-02-00");
        assert!(!matches(&automated), "{sample_name}: a snapshot that is not Lifeboat's");
    }
    assert!(!matches(&sample_event("snapshot-scheduled.json")));
    let target = &stack.property("SnapshotRdsEvents", "Targets")[0];
    assert_eq!(target["Arn"], stack.attribute("SnapshotFunction", "Arn").as_str());
    assert!(
        target["InputTransformer"].is_null(),
        "RDS events are delivered as they are"
    );
    assert_eq!(
        target["DeadLetterConfig"]["Arn"],
        stack.attribute("DeadLetterQueue", "Arn").as_str()
    );
    assert_eq!(
        stack.property("SnapshotRdsEventsPermission", "SourceArn"),
        stack.attribute("SnapshotRdsEvents", "Arn").as_str()
    );
    let queue_policy = stack.property("DeadLetterQueuePolicy", "PolicyDocument");
    let sources = &queue_policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"];
    assert!(sources
        .as_array()
        .unwrap()
        .contains(&json!(stack.attribute("SnapshotRdsEvents", "Arn"))));
}

// ---------------------------------------------------------------------------
// Least privilege, proven from the template
// ---------------------------------------------------------------------------

#[test]
fn the_file_backup_role_may_make_its_calls_and_nothing_else() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policies = stack.role_policies("FileBackupRole");

    let bucket = stack.attribute("BackupBucket", "Arn");
    let key = stack.attribute("StoreKey", "Arn");
    let table = stack.attribute("CatalogTable", "Arn");
    let queue = stack.attribute("DeadLetterQueue", "Arn");
    let log_stream = format!(
        "arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{}:log-stream:2026/11/23/[$LATEST]abc",
        stack.reference("FileBackupLogGroup")
    );
    let object = |key: &str| format!("{bucket}/{key}");
    let source = "arn:aws:s3:::lifeboat-demo-data";

    // The calls the library makes for a backup (Repository::open,
    // load_index, put_pack/put_index/put_manifest, source listing and
    // reads, Kms::unwrap, Catalog::begin/mark_in_progress/complete/fail,
    // latest_completed, the audit trail's append) and the runtime's own.
    let allowed = [
        Request::new("s3:GetObject", &object("lifeboat/config")),
        Request::new("s3:GetObject", &object("lifeboat/index/0a1b")),
        Request::new("s3:PutObject", &object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObject", &object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("s3:ListBucket", &bucket).with("s3:prefix", "lifeboat/index/"),
        Request::new("s3:GetObject", &format!("{source}/app/users/1.json")),
        Request::new("s3:ListBucket", source).with("s3:prefix", "app"),
        Request::new("kms:Decrypt", &key),
        Request::new("kms:GenerateDataKey", &key),
        Request::new("kms:DescribeKey", &key),
        Request::new("dynamodb:GetItem", &table),
        Request::new("dynamodb:PutItem", &table),
        Request::new("dynamodb:UpdateItem", &table),
        Request::new("dynamodb:Query", &table),
        Request::new("dynamodb:Query", &format!("{table}/index/bySource")),
        Request::new("dynamodb:Query", &format!("{table}/index/byTime")),
        Request::new("sqs:SendMessage", &queue),
        Request::new("logs:CreateLogStream", &log_stream),
        Request::new("logs:PutLogEvents", &log_stream),
    ];
    for request in &allowed {
        assert_eq!(evaluate(&policies, request), Decision::Allow, "{request:?}");
    }
    // TransactWriteItems is authorised item by item: the claim and the record
    // (PutItem), the audit head (UpdateItem), condition checks.
    for item_action in ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"] {
        let request = Request::new(item_action, &table);
        assert_eq!(
            evaluate(&policies, &request),
            Decision::Allow,
            "TransactWriteItems needs {item_action}"
        );
    }

    let other_key = format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/ffffffff-0000-4000-8000-000000000000");
    let other_table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/someone-elses");
    let denied = [
        // Backups are never deleted or unlocked by the backup function.
        Request::new("s3:DeleteObject", &object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:DeleteObjectVersion", &object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:BypassGovernanceRetention", &object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObjectRetention", &object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutBucketPolicy", &bucket),
        Request::new("s3:PutBucketObjectLockConfiguration", &bucket),
        // Only the store's prefix, only reading the source.
        Request::new("s3:PutObject", &object("elsewhere/x")),
        Request::new("s3:GetObject", &object("elsewhere/x")),
        Request::new("s3:ListBucket", &bucket).with("s3:prefix", "elsewhere/"),
        Request::new("s3:PutObject", &format!("{source}/app/users/1.json")),
        Request::new("s3:DeleteObject", &format!("{source}/app/users/1.json")),
        Request::new("s3:GetObject", &format!("{source}/secrets/db.env")),
        Request::new("s3:GetObject", "arn:aws:s3:::another-bucket/app/x"),
        // The key: use, not manage; no other key.
        Request::new("kms:ScheduleKeyDeletion", &key),
        Request::new("kms:DisableKey", &key),
        Request::new("kms:PutKeyPolicy", &key),
        Request::new("kms:Encrypt", &key),
        Request::new("kms:ReEncryptFrom", &key),
        Request::new("kms:Decrypt", &other_key),
        // The catalog: no deletes, scans or table changes; no other table.
        Request::new("dynamodb:DeleteTable", &table),
        Request::new("dynamodb:UpdateTable", &table),
        Request::new("dynamodb:DeleteItem", &table),
        Request::new("dynamodb:Scan", &table),
        Request::new("dynamodb:UpdateContinuousBackups", &table),
        Request::new("dynamodb:PutItem", &other_table),
        // What other functions will do (retention, snapshots, alerts).
        Request::new(
            "rds:DeleteDBSnapshot",
            "arn:aws:rds:us-east-1:123456789012:snapshot:lifeboat-1",
        ),
        Request::new("rds:CreateDBSnapshot", "*"),
        Request::new("sns:Publish", &stack.reference("AlertsTopic")),
        Request::new("sns:Publish", "arn:aws:sns:us-east-1:123456789012:another-topic"),
        Request::new("iam:PassRole", "*"),
        Request::new("sts:AssumeRole", "*"),
        Request::new("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:another-queue"),
    ];
    for request in &denied {
        assert_eq!(evaluate(&policies, request), Decision::ImplicitDeny, "{request:?}");
    }
}

/// The requests of the library's calls for a function, and the runtime's.
struct Resources {
    bucket: String,
    key: String,
    table: String,
    queue: String,
    topic: String,
}

impl Resources {
    fn of(stack: &Stack) -> Self {
        Self {
            bucket: stack.attribute("BackupBucket", "Arn"),
            key: stack.attribute("StoreKey", "Arn"),
            table: stack.attribute("CatalogTable", "Arn"),
            queue: stack.attribute("DeadLetterQueue", "Arn"),
            topic: stack.reference("AlertsTopic"),
        }
    }

    fn object(&self, key: &str) -> String {
        format!("{}/{key}", self.bucket)
    }
}

fn log_stream(stack: &Stack, log_group: &str) -> String {
    format!(
        "arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{}:log-stream:2026/11/23/[$LATEST]abc",
        stack.reference(log_group)
    )
}

fn assert_decisions(role: &str, policies: &[Value], allowed: &[Request], denied: &[Request]) {
    for request in allowed {
        assert_eq!(evaluate(policies, request), Decision::Allow, "{role}: {request:?}");
    }
    for request in denied {
        assert_eq!(
            evaluate(policies, request),
            Decision::ImplicitDeny,
            "{role}: {request:?}"
        );
    }
}

#[test]
fn the_verify_role_reads_the_store_and_records_verifications() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policies = stack.role_policies("VerifyRole");
    let r = Resources::of(&stack);
    let stream = log_stream(&stack, "VerifyLogGroup");
    let snapshot = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:lifeboat-db-nightly-orders-db-20261123-0200");
    let copy = format!("arn:aws:rds:{DR_REGION}:{ACCOUNT_ID}:snapshot:lifeboat-db-nightly-orders-db-20261123-0200");
    let cluster_copy =
        format!("arn:aws:rds:{DR_REGION}:{ACCOUNT_ID}:cluster-snapshot:lifeboat-db-nightly-orders-20261123-0200");
    let temporary = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:db:lifeboat-rt-orders-db-202611230200");
    let database = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:db:orders-db");
    let subnet_group = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:subgrp:lifeboat-checks");
    let snapshot_key = format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0f1e2d3c-orders");
    let rds_service = format!("rds.{REGION}.amazonaws.com");
    // Repository::open_at (config, Kms::describe/unwrap), the index and
    // manifests and packs it reads, Catalog::get/list/verifications,
    // record_verification.
    let allowed = [
        Request::new("s3:GetObject", &r.object("lifeboat/config")),
        Request::new("s3:GetObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:GetObject", &r.object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "lifeboat/index/"),
        Request::new("kms:Decrypt", &r.key),
        Request::new("kms:DescribeKey", &r.key),
        Request::new("dynamodb:GetItem", &r.table),
        Request::new("dynamodb:Query", &r.table),
        Request::new("dynamodb:Query", &format!("{}/index/bySource", r.table)),
        Request::new("dynamodb:Query", &format!("{}/index/byTime", r.table)),
        Request::new("dynamodb:PutItem", &r.table),
        Request::new("sqs:SendMessage", &r.queue),
        Request::new("logs:CreateLogStream", &stream),
        Request::new("logs:PutLogEvents", &stream),
        // Snapshot verification (snapshot::verify): the plan file, the
        // snapshots and their copies, the copy region's key.
        Request::new("s3:GetObject", "arn:aws:s3:::lifeboat-code/lifeboat/plans.toml"),
        Request::new("rds:DescribeDBSnapshots", &snapshot),
        Request::new("rds:DescribeDBSnapshots", &copy),
        Request::new("rds:DescribeDBClusterSnapshots", &cluster_copy),
        Request::new("kms:DescribeKey", DR_KEY),
        // Scheduled restore tests (snapshot::restore_tests): restore a
        // Lifeboat snapshot to a lifeboat-rt-* instance, tag, watch and
        // delete it; list the instances (orphan sweep); RDS uses the
        // snapshot's key through a grant; the snapshot records are scanned.
        Request::new("rds:RestoreDBInstanceFromDBSnapshot", &snapshot),
        Request::new("rds:RestoreDBInstanceFromDBSnapshot", &temporary),
        Request::new("rds:RestoreDBInstanceFromDBSnapshot", &subnet_group),
        Request::new("rds:AddTagsToResource", &temporary),
        Request::new("rds:DescribeDBInstances", &temporary),
        Request::new("rds:DescribeDBInstances", &database),
        Request::new("rds:DeleteDBInstance", &temporary),
        Request::new("kms:CreateGrant", &snapshot_key).with("kms:ViaService", &rds_service),
        Request::new("dynamodb:Scan", &r.table),
    ];
    let denied = [
        // Snapshots are read and restored to lifeboat-rt-* instances, never
        // deleted, copied or restored over anything else.
        Request::new("rds:DeleteDBSnapshot", &snapshot),
        Request::new("rds:DeleteDBSnapshot", &copy),
        Request::new("rds:DeleteDBClusterSnapshot", &cluster_copy),
        Request::new("rds:CopyDBSnapshot", &snapshot),
        Request::new("rds:RestoreDBInstanceFromDBSnapshot", &database),
        Request::new(
            "rds:RestoreDBInstanceFromDBSnapshot",
            &format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:rds:orders-db-2026-11-23"),
        ),
        Request::new("rds:RestoreDBClusterFromSnapshot", &cluster_copy),
        // Only the temporary instances are tagged, changed or deleted.
        Request::new("rds:DeleteDBInstance", &database),
        Request::new(
            "rds:DeleteDBInstance",
            &format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:db:lifeboat-orders"),
        ),
        Request::new("rds:AddTagsToResource", &database),
        Request::new("rds:ModifyDBInstance", &temporary),
        Request::new(
            "rds:DeleteDBCluster",
            &format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:cluster:orders"),
        ),
        Request::new("kms:CreateGrant", &snapshot_key),
        Request::new("kms:CreateGrant", DR_KEY),
        // Verification never changes the store.
        Request::new("s3:PutObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObject", &r.object("lifeboat/config")),
        Request::new("s3:DeleteObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:DeleteObjectVersion", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObjectRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:GetObject", &r.object("elsewhere/x")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "elsewhere/"),
        Request::new("s3:GetObject", "arn:aws:s3:::lifeboat-demo-data/app/users/1.json"),
        Request::new("kms:GenerateDataKey", &r.key),
        Request::new("kms:Encrypt", &r.key),
        Request::new("dynamodb:UpdateItem", &r.table),
        Request::new("dynamodb:DeleteItem", &r.table),
        Request::new("sns:Publish", &r.topic),
    ];
    assert_decisions("VerifyRole", &policies, &allowed, &denied);
}

#[test]
fn the_retention_role_expires_collects_and_audits() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policies = stack.role_policies("RetentionRole");
    let r = Resources::of(&stack);
    let stream = log_stream(&stack, "RetentionLogGroup");
    let snapshot = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:lifeboat-db-nightly-orders-db-20261123-0200");
    let copy = format!("arn:aws:rds:{DR_REGION}:{ACCOUNT_ID}:snapshot:lifeboat-db-nightly-orders-db-20261123-0200");
    let cluster_copy =
        format!("arn:aws:rds:{DR_REGION}:{ACCOUNT_ID}:cluster-snapshot:lifeboat-db-nightly-orders-20261123-0200");
    // plan_expiry (Catalog::list, list_holds: Scan), apply_expiry
    // (Catalog::get, mark_deleted, the manifest's deletion, the audit
    // trail's head and append: a transaction of Put/Update/ConditionCheck),
    // collect_garbage (listing, marks written, unreferenced objects deleted).
    let allowed = [
        Request::new("s3:GetObject", &r.object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("s3:PutObject", &r.object("lifeboat/gc/mark")),
        Request::new("s3:DeleteObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:DeleteObject", &r.object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "lifeboat/packs/"),
        Request::new("kms:Decrypt", &r.key),
        Request::new("kms:DescribeKey", &r.key),
        Request::new("kms:GenerateDataKey", &r.key),
        Request::new("dynamodb:GetItem", &r.table),
        Request::new("dynamodb:Query", &r.table),
        Request::new("dynamodb:Query", &format!("{}/index/bySource", r.table)),
        Request::new("dynamodb:Scan", &r.table),
        Request::new("dynamodb:PutItem", &r.table),
        Request::new("dynamodb:UpdateItem", &r.table),
        Request::new("dynamodb:ConditionCheckItem", &r.table),
        Request::new("sqs:SendMessage", &r.queue),
        Request::new("logs:CreateLogStream", &stream),
        Request::new("logs:PutLogEvents", &stream),
        // Snapshot retention (snapshot::retention): the plan file,
        // Lifeboat's snapshots and their copies, the record moved to its
        // tombstone in one transaction.
        Request::new("s3:GetObject", "arn:aws:s3:::lifeboat-code/lifeboat/plans.toml"),
        Request::new("rds:DescribeDBSnapshots", &snapshot),
        Request::new("rds:DeleteDBSnapshot", &snapshot),
        Request::new("rds:DeleteDBSnapshot", &copy),
        Request::new("rds:DeleteDBClusterSnapshot", &cluster_copy),
        Request::new("dynamodb:DeleteItem", &r.table).with(
            "dynamodb:LeadingKeys",
            "snapshot#db-nightly#arn:aws:rds:us-east-1:123456789012:db:orders-db#2026-11-23T02:00:00Z",
        ),
    ];
    let denied = [
        // Object Lock keeps each version: never deleted, never unlocked.
        Request::new("s3:DeleteObjectVersion", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:BypassGovernanceRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObjectRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutBucketObjectLockConfiguration", &r.bucket),
        Request::new("s3:PutLifecycleConfiguration", &r.bucket),
        Request::new("s3:DeleteObject", &r.object("elsewhere/x")),
        Request::new("s3:DeleteObject", "arn:aws:s3:::lifeboat-demo-data/app/users/1.json"),
        Request::new("kms:Encrypt", &r.key),
        // Backup records are marked deleted, never removed.
        Request::new("dynamodb:DeleteItem", &r.table)
            .with("dynamodb:LeadingKeys", "backup#bk-20261123T020000Z-0000abcd"),
        Request::new("dynamodb:DeleteItem", &r.table).with("dynamodb:LeadingKeys", "audit"),
        // Never a database, nor a snapshot that is not Lifeboat's.
        Request::new(
            "rds:DeleteDBInstance",
            &format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:db:orders-db"),
        ),
        Request::new(
            "rds:DeleteDBSnapshot",
            &format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:orders-manual"),
        ),
        Request::new("dynamodb:BatchWriteItem", &r.table),
        Request::new("sns:Publish", &r.topic),
    ];
    assert_decisions("RetentionRole", &policies, &allowed, &denied);
}

#[test]
fn the_alert_role_reads_the_catalog_and_publishes_to_the_topic() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policies = stack.role_policies("AlertRole");
    let r = Resources::of(&stack);
    let stream = log_stream(&stack, "AlertLogGroup");
    let via_sns = format!("sns.{REGION}.amazonaws.com");
    // run_alerts: Catalog::latest_completed/list/verifications, the alert
    // records (Scan, conditional PutItem/UpdateItem), AlertTopic::publish
    // (SNS encrypts for the publisher with the topic's key).
    let allowed = [
        Request::new("dynamodb:GetItem", &r.table),
        Request::new("dynamodb:Query", &r.table),
        Request::new("dynamodb:Query", &format!("{}/index/byTime", r.table)),
        Request::new("dynamodb:Scan", &r.table),
        Request::new("dynamodb:PutItem", &r.table),
        Request::new("dynamodb:UpdateItem", &r.table),
        Request::new("sns:Publish", &r.topic),
        Request::new("kms:GenerateDataKey", &r.key).with("kms:ViaService", &via_sns),
        Request::new("kms:Decrypt", &r.key).with("kms:ViaService", &via_sns),
        Request::new("sqs:SendMessage", &r.queue),
        Request::new("logs:CreateLogStream", &stream),
        Request::new("logs:PutLogEvents", &stream),
        // The plan file, for the snapshot conditions.
        Request::new("s3:GetObject", "arn:aws:s3:::lifeboat-code/lifeboat/plans.toml"),
    ];
    let denied = [
        Request::new("sns:Publish", "arn:aws:sns:us-east-1:123456789012:another-topic"),
        Request::new("sns:Subscribe", &r.topic),
        Request::new("sns:SetTopicAttributes", &r.topic),
        // The key only through SNS.
        Request::new("kms:Decrypt", &r.key),
        Request::new("kms:GenerateDataKey", &r.key),
        Request::new("kms:Decrypt", &r.key).with("kms:ViaService", &format!("s3.{REGION}.amazonaws.com")),
        // No store access at all.
        Request::new("s3:GetObject", &r.object("lifeboat/config")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "lifeboat/"),
        Request::new("dynamodb:DeleteItem", &r.table),
    ];
    assert_decisions("AlertRole", &policies, &allowed, &denied);
}

#[test]
fn the_snapshot_role_snapshots_and_copies_and_nothing_else() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policies = stack.role_policies("SnapshotRole");
    let r = Resources::of(&stack);
    let log = log_stream(&stack, "SnapshotLogGroup");
    let rds = |region: &str, kind: &str, name: &str| format!("arn:aws:rds:{region}:{ACCOUNT_ID}:{kind}:{name}");
    let db = rds(REGION, "db", "orders-db");
    let cluster = rds(REGION, "cluster", "orders");
    let snapshot = rds(REGION, "snapshot", "lifeboat-db-nightly-orders-db-20261123-0200");
    let cluster_snapshot = rds(REGION, "cluster-snapshot", "lifeboat-db-nightly-orders-20261123-0200");
    let copy = rds(DR_REGION, "snapshot", "lifeboat-db-nightly-orders-db-20261123-0200");
    let cluster_copy = rds(
        DR_REGION,
        "cluster-snapshot",
        "lifeboat-db-nightly-orders-20261123-0200",
    );
    let plans = "arn:aws:s3:::lifeboat-code/lifeboat/plans.toml";

    // The library's calls (snapshot::load_plans, AwsRds, SnapshotCatalog)
    // and the runtime's.
    let allowed = [
        Request::new("s3:GetObject", plans),
        Request::new("rds:DescribeDBInstances", &db),
        Request::new("rds:DescribeDBClusters", &cluster),
        Request::new("rds:CreateDBSnapshot", &db),
        Request::new("rds:CreateDBSnapshot", &snapshot),
        Request::new("rds:CreateDBClusterSnapshot", &cluster),
        Request::new("rds:CreateDBClusterSnapshot", &cluster_snapshot),
        Request::new("rds:AddTagsToResource", &snapshot),
        Request::new("rds:AddTagsToResource", &cluster_snapshot),
        Request::new("rds:AddTagsToResource", &copy),
        Request::new("rds:AddTagsToResource", &cluster_copy),
        Request::new("rds:DescribeDBSnapshots", &snapshot),
        Request::new("rds:DescribeDBSnapshots", &copy),
        Request::new("rds:DescribeDBClusterSnapshots", &cluster_snapshot),
        Request::new("rds:DescribeDBClusterSnapshots", &cluster_copy),
        Request::new("rds:CopyDBSnapshot", &snapshot),
        Request::new("rds:CopyDBSnapshot", &copy),
        Request::new("rds:CopyDBClusterSnapshot", &cluster_snapshot),
        Request::new("rds:CopyDBClusterSnapshot", &cluster_copy),
        Request::new("kms:DescribeKey", DR_KEY),
        Request::new("kms:CreateGrant", DR_KEY).with("kms:GrantIsForAWSResource", "true"),
        Request::new("dynamodb:PutItem", &r.table),
        Request::new("dynamodb:Query", &r.table),
        Request::new("dynamodb:Query", &format!("{}/index/byTime", r.table)),
        Request::new("dynamodb:Query", &format!("{}/index/bySource", r.table)),
        Request::new("sqs:SendMessage", &r.queue),
        Request::new("logs:CreateLogStream", &log),
        Request::new("logs:PutLogEvents", &log),
        // A plan's database dumps (snapshot::run_plan_dumps): the dump's
        // claim (PutItem, GetItem when taken), the store (Repository::open,
        // load_index, packs, index, manifest, Kms::unwrap, SSE-KMS) and the
        // backup record (Catalog::begin PutItem, mark_in_progress / complete
        // / fail UpdateItem).
        Request::new("dynamodb:GetItem", &r.table),
        Request::new("dynamodb:UpdateItem", &r.table),
        Request::new("s3:GetObject", &r.object("lifeboat/config")),
        Request::new("s3:GetObject", &r.object("lifeboat/index/0a1b")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "lifeboat/index/"),
        Request::new("s3:PutObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObject", &r.object("lifeboat/index/0a1b")),
        Request::new("s3:PutObject", &r.object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("kms:Decrypt", &r.key),
        Request::new("kms:GenerateDataKey", &r.key),
        Request::new("kms:DescribeKey", &r.key),
    ];
    let denied = [
        // Dumps never delete or unlock store objects, never write elsewhere.
        Request::new("s3:DeleteObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:DeleteObject", &r.object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("s3:DeleteObjectVersion", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObjectRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:BypassGovernanceRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObject", &r.object("elsewhere/x")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "elsewhere/"),
        Request::new("kms:Encrypt", &r.key),
        Request::new("kms:ReEncryptFrom", &r.key),
        // No secret unless the stack names it (DatabaseSecretArns).
        Request::new(
            "secretsmanager:GetSecretValue",
            &format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:orders-db-AbCdEf"),
        ),
        // Never deletes, shares or restores; never touches the databases.
        Request::new("rds:DeleteDBSnapshot", &snapshot),
        Request::new("rds:DeleteDBSnapshot", &copy),
        Request::new("rds:DeleteDBClusterSnapshot", &cluster_snapshot),
        Request::new("rds:ModifyDBSnapshotAttribute", &snapshot),
        Request::new("rds:RestoreDBInstanceFromDBSnapshot", &snapshot),
        Request::new("rds:DeleteDBInstance", &db),
        Request::new("rds:ModifyDBInstance", &db),
        Request::new("rds:DeleteDBCluster", &cluster),
        // Only snapshots under Lifeboat's names, only in its two regions.
        Request::new("rds:CreateDBSnapshot", &rds(REGION, "snapshot", "someone-elses")),
        Request::new("rds:CopyDBSnapshot", &rds("eu-west-1", "snapshot", "lifeboat-x")),
        Request::new("rds:DescribeDBInstances", &rds(DR_REGION, "db", "orders-db")),
        // The DR key only for RDS's grants and DescribeKey; no other key.
        Request::new("kms:CreateGrant", DR_KEY),
        Request::new("kms:Decrypt", DR_KEY),
        Request::new("kms:ScheduleKeyDeletion", DR_KEY),
        Request::new(
            "kms:DescribeKey",
            &format!("arn:aws:kms:{DR_REGION}:{ACCOUNT_ID}:key/ffffffff-0000-4000-8000-000000000000"),
        ),
        // Not the plan file's neighbours, no publishing.
        Request::new("s3:PutObject", plans),
        Request::new(
            "s3:GetObject",
            "arn:aws:s3:::lifeboat-code/lifeboat/snapshot/bootstrap.zip",
        ),
        Request::new("dynamodb:DeleteItem", &r.table),
        Request::new("dynamodb:Scan", &r.table),
        Request::new("dynamodb:DeleteTable", &r.table),
        Request::new("sns:Publish", &r.topic),
        Request::new("iam:PassRole", "*"),
    ];
    assert_decisions("SnapshotRole", &policies, &allowed, &denied);
    // One run at a time, so that runs cannot together exceed the copy limit.
    assert_eq!(stack.property("SnapshotFunction", "ReservedConcurrentExecutions"), 1);

    // Without a copy region, no copies and no DR key at all.
    let no_copies: Vec<(&str, &str)> = primary_parameters()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("SnapshotCopy"))
        .collect();
    let local = Stack::new(&template, STACK, &no_copies);
    let policies = local.role_policies("SnapshotRole");
    assert_decisions(
        "SnapshotRole without copies",
        &policies,
        &[Request::new("rds:CreateDBSnapshot", &snapshot)],
        &[
            Request::new("rds:CopyDBSnapshot", &copy),
            Request::new("rds:DescribeDBSnapshots", &copy),
            Request::new("kms:DescribeKey", DR_KEY),
        ],
    );
}

/// The snapshot function's database dumps as deployed: the store in its
/// environment, the secrets the stack names and no others, the VPC and the
/// tools layer only when given.
#[test]
fn the_snapshot_function_dumps_with_the_stacks_store_secrets_network_and_layer() {
    let template = template("lifeboat.yaml");
    let secret = |name: &str| format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{name}");
    let (orders, shop) = (secret("orders-db-AbCdEf"), secret("shop-db-GhIjKl"));
    let layer = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:lifeboat-db-tools:3");
    let secrets_list = format!("{orders},{shop}");
    let mut parameters = primary_parameters();
    parameters.extend([
        ("DatabaseSecretArns", secrets_list.as_str()),
        ("FunctionSubnetIds", "subnet-0a1b,subnet-2c3d"),
        ("FunctionSecurityGroupIds", "sg-0a1b"),
        ("DbToolsLayerArn", layer.as_str()),
    ]);
    let stack = Stack::new(&template, STACK, &parameters);
    let environment = &stack.property("SnapshotFunction", "Environment")["Variables"];
    assert_eq!(
        environment["LIFEBOAT_STORE"],
        format!("s3://{}/lifeboat", stack.reference("BackupBucket")),
        "the store the toolkit and file-backup use"
    );
    assert_eq!(environment["LIFEBOAT_KMS_KEY"], stack.attribute("StoreKey", "Arn"));
    lifeboat::storage::Location::parse(environment["LIFEBOAT_STORE"].as_str().unwrap_or_default())
        .expect("the function reads LIFEBOAT_STORE");
    assert_eq!(stack.property("SnapshotFunction", "Layers"), json!([layer]));
    assert_eq!(
        stack.property("SnapshotFunction", "VpcConfig"),
        json!({"SubnetIds": ["subnet-0a1b", "subnet-2c3d"], "SecurityGroupIds": ["sg-0a1b"]})
    );
    // In a VPC, Lambda needs the network-interface rights of AWS's managed policy.
    assert_eq!(
        stack.resolve(&stack.resource("SnapshotRole")["Properties"]["ManagedPolicyArns"]),
        json!(["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"])
    );
    // Dumps outlast the old 5 minutes.
    assert_eq!(stack.property("SnapshotFunction", "Timeout"), 900);

    // The role's policies, the managed one left out (what it allows is AWS's).
    let mut documents = Vec::new();
    for logical in stack.resources_of_type("AWS::IAM::Policy") {
        let resource = stack.resource(logical);
        let created = resource["Condition"].as_str().is_none_or(|c| stack.condition(c));
        if created && resource["Properties"]["Roles"] == json!([{"Ref": "SnapshotRole"}]) {
            documents.push(stack.resolve(&resource["Properties"]["PolicyDocument"]));
        }
    }
    assert_decisions(
        "SnapshotRole with secrets",
        &documents,
        &[
            Request::new("secretsmanager:GetSecretValue", &orders),
            Request::new("secretsmanager:GetSecretValue", &shop),
        ],
        &[
            Request::new("secretsmanager:GetSecretValue", &secret("payroll-db-MnOpQr")),
            Request::new("secretsmanager:PutSecretValue", &orders),
            Request::new("secretsmanager:ListSecrets", "*"),
        ],
    );

    // Without them: no VPC, no layer, no managed policy, no secret.
    let plain = Stack::new(&template, STACK, &primary_parameters());
    assert!(plain.property("SnapshotFunction", "VpcConfig").is_null());
    assert!(plain.property("SnapshotFunction", "Layers").is_null());
    let policies = plain.role_policies("SnapshotRole");
    assert_eq!(
        evaluate(&policies, &Request::new("secretsmanager:GetSecretValue", &orders)),
        Decision::ImplicitDeny
    );
}

#[test]
fn the_verify_function_reaches_restore_test_instances_through_the_stacks_network_and_layer() {
    let template = template("lifeboat.yaml");
    let layer = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:lifeboat-db-tools:3");
    let mut parameters = primary_parameters();
    parameters.extend([
        ("FunctionSubnetIds", "subnet-0a1b,subnet-2c3d"),
        ("FunctionSecurityGroupIds", "sg-0a1b"),
        ("DbToolsLayerArn", layer.as_str()),
    ]);
    let stack = Stack::new(&template, STACK, &parameters);
    assert_eq!(stack.property("VerifyFunction", "Layers"), json!([layer]));
    assert_eq!(
        stack.property("VerifyFunction", "VpcConfig"),
        json!({"SubnetIds": ["subnet-0a1b", "subnet-2c3d"], "SecurityGroupIds": ["sg-0a1b"]})
    );
    assert_eq!(
        stack.resolve(&stack.resource("VerifyRole")["Properties"]["ManagedPolicyArns"]),
        json!(["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"])
    );
    // A restore test may outlast an invocation; the function runs its 15 minutes.
    assert_eq!(stack.property("VerifyFunction", "Timeout"), 900);

    let plain = Stack::new(&template, STACK, &primary_parameters());
    assert!(plain.property("VerifyFunction", "VpcConfig").is_null());
    assert!(plain.property("VerifyFunction", "Layers").is_null());
    assert!(plain
        .resolve(&plain.resource("VerifyRole")["Properties"]["ManagedPolicyArns"])
        .is_null());
}

/// What tells the roles apart: only retention deletes from the store, only
/// alert publishes, verify never writes, and none of them can destroy the
/// key or the catalog.
#[test]
fn the_roles_differ_where_it_matters() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let r = Resources::of(&stack);
    let delete_pack = Request::new("s3:DeleteObject", &r.object("lifeboat/packs/0a/0a1b2c"));
    let delete_manifest = Request::new("s3:DeleteObject", &r.object("lifeboat/manifests/20261123T020000Z-ab"));
    let publish = Request::new("sns:Publish", &r.topic);
    for (_, role, _) in FUNCTIONS {
        let policies = stack.role_policies(role);
        let decide = |request: &Request| evaluate(&policies, request);
        let may_delete = role == "RetentionRole";
        for request in [&delete_pack, &delete_manifest] {
            assert_eq!(decide(request) == Decision::Allow, may_delete, "{role}: {request:?}");
        }
        assert_eq!(
            decide(&publish) == Decision::Allow,
            role == "AlertRole",
            "{role}: sns:Publish"
        );
        // Only the snapshot function makes snapshots; none deletes one.
        let snapshot =
            format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:lifeboat-db-nightly-orders-db-20261123-0200");
        let instance = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:db:orders-db");
        for action in ["rds:CreateDBSnapshot", "rds:CopyDBSnapshot"] {
            assert_eq!(
                decide(&Request::new(action, &snapshot)) == Decision::Allow,
                role == "SnapshotRole",
                "{role}: {action}"
            );
        }
        assert_eq!(
            decide(&Request::new("rds:CreateDBSnapshot", &instance)) == Decision::Allow,
            role == "SnapshotRole",
            "{role}: rds:CreateDBSnapshot of an instance"
        );
        // Only retention deletes one (Lifeboat's own, by name); verify and
        // retention read their state.
        assert_eq!(
            decide(&Request::new("rds:DeleteDBSnapshot", &snapshot)) == Decision::Allow,
            role == "RetentionRole",
            "{role}: rds:DeleteDBSnapshot"
        );
        let foreign = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:rds:orders-db-2026-11-23-02-00");
        assert_eq!(
            decide(&Request::new("rds:DeleteDBSnapshot", &foreign)),
            Decision::ImplicitDeny,
            "{role}: rds:DeleteDBSnapshot of an automated snapshot"
        );
        assert_eq!(
            decide(&Request::new("rds:DescribeDBSnapshots", &snapshot)) == Decision::Allow,
            matches!(role, "SnapshotRole" | "VerifyRole" | "RetentionRole"),
            "{role}: rds:DescribeDBSnapshots"
        );
        for request in [
            Request::new("kms:ScheduleKeyDeletion", &r.key),
            Request::new("kms:ScheduleKeyDeletion", "*"),
            Request::new("kms:DisableKey", &r.key),
            Request::new("kms:PutKeyPolicy", &r.key),
            Request::new("dynamodb:DeleteTable", &r.table),
            Request::new("dynamodb:DeleteTable", "*"),
            Request::new("dynamodb:UpdateTable", &r.table),
            Request::new("s3:DeleteBucket", &r.bucket),
            Request::new("s3:DeleteObjectVersion", &r.object("lifeboat/packs/0a/0a1b2c")),
            Request::new("s3:PutObjectRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
            Request::new("s3:BypassGovernanceRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
            Request::new("iam:PassRole", "*"),
            Request::new("sts:AssumeRole", "*"),
        ] {
            assert_eq!(decide(&request), Decision::ImplicitDeny, "{role}: {request:?}");
        }
    }
    let verify = stack.role_policies("VerifyRole");
    for key in ["lifeboat/packs/0a/0a1b2c", "lifeboat/index/0a1b", "lifeboat/config"] {
        assert_eq!(
            evaluate(&verify, &Request::new("s3:PutObject", &r.object(key))),
            Decision::ImplicitDeny,
            "verify may not write {key}"
        );
    }
}

#[test]
fn only_the_functions_and_the_operator_use_the_key() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policy_text = stack.property("StoreKey", "KeyPolicy");
    let policy: Value = serde_json::from_str(policy_text.as_str().expect("a JSON string (see the template)"))
        .expect("the key policy is JSON");
    let policies = [policy];
    let role = stack.attribute("FileBackupRole", "Arn");
    let root = format!("arn:aws:iam::{ACCOUNT_ID}:root");
    let stranger = format!("arn:aws:iam::{ACCOUNT_ID}:role/someone-else");
    let decide = |principal: &str, action: &str| evaluate(&policies, &Request::new(action, "*").by(principal));

    for action in ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"] {
        assert_eq!(decide(&role, action), Decision::Allow, "the function: {action}");
        assert_eq!(decide(OPERATOR_ROLE, action), Decision::Allow, "the operator: {action}");
    }
    assert_eq!(
        decide(OPERATOR_ROLE, "kms:ReEncryptFrom"),
        Decision::Allow,
        "keys rewrap"
    );
    for action in ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:ReEncryptFrom"] {
        assert_eq!(
            decide(&stranger, action),
            Decision::ImplicitDeny,
            "a stranger: {action}"
        );
        assert_eq!(
            decide(&root, action),
            Decision::ImplicitDeny,
            "the account administers only: {action}"
        );
    }
    assert_eq!(decide(&root, "kms:ScheduleKeyDeletion"), Decision::Allow);
    assert_eq!(decide(&root, "kms:PutKeyPolicy"), Decision::Allow);
    assert_eq!(decide(&role, "kms:ScheduleKeyDeletion"), Decision::ImplicitDeny);
    assert_eq!(decide(&role, "kms:CreateGrant"), Decision::ImplicitDeny);

    // The other functions: retention writes to the store (SSE-KMS needs
    // GenerateDataKey), verify only reads, alert only through SNS.
    let verify = stack.attribute("VerifyRole", "Arn");
    let retention = stack.attribute("RetentionRole", "Arn");
    let alert = stack.attribute("AlertRole", "Arn");
    let snapshot = stack.attribute("SnapshotRole", "Arn");
    // The snapshot function writes database dumps into the store.
    for action in ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"] {
        assert_eq!(decide(&retention, action), Decision::Allow, "retention: {action}");
        assert_eq!(decide(&snapshot, action), Decision::Allow, "snapshot: {action}");
    }
    for action in ["kms:Decrypt", "kms:DescribeKey"] {
        assert_eq!(decide(&verify, action), Decision::Allow, "verify: {action}");
    }
    assert_eq!(
        decide(&verify, "kms:GenerateDataKey"),
        Decision::ImplicitDeny,
        "verify writes nothing"
    );
    for action in ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"] {
        assert_eq!(
            decide(&alert, action),
            Decision::ImplicitDeny,
            "alert, directly: {action}"
        );
        let via_sns = Request::new(action, "*")
            .by(&alert)
            .with("kms:ViaService", &format!("sns.{REGION}.amazonaws.com"))
            .with("kms:CallerAccount", ACCOUNT_ID);
        let expected = if action == "kms:DescribeKey" {
            Decision::ImplicitDeny
        } else {
            Decision::Allow
        };
        assert_eq!(evaluate(&policies, &via_sns), expected, "alert, through SNS: {action}");
    }
    for function_role in [&role, &verify, &retention, &alert, &snapshot] {
        for action in [
            "kms:ScheduleKeyDeletion",
            "kms:DisableKey",
            "kms:PutKeyPolicy",
            "kms:CreateGrant",
            "kms:Encrypt",
        ] {
            assert_eq!(
                decide(function_role, action),
                Decision::ImplicitDeny,
                "{function_role}: {action}"
            );
        }
        let via_dynamodb = Request::new("kms:Decrypt", "*")
            .by(function_role)
            .with("kms:ViaService", &format!("dynamodb.{REGION}.amazonaws.com"))
            .with("kms:CallerAccount", ACCOUNT_ID);
        assert_eq!(
            evaluate(&policies, &via_dynamodb),
            Decision::Allow,
            "{function_role}: the catalog"
        );
    }

    // Through DynamoDB (the catalog's encryption), and only through it.
    let via_dynamodb = |principal: &str, action: &str| {
        let request = Request::new(action, "*")
            .by(principal)
            .with("kms:ViaService", &format!("dynamodb.{REGION}.amazonaws.com"))
            .with("kms:CallerAccount", ACCOUNT_ID);
        evaluate(&policies, &request)
    };
    assert_eq!(via_dynamodb(&role, "kms:Encrypt"), Decision::Allow);
    assert_eq!(via_dynamodb(&role, "kms:CreateGrant"), Decision::Allow);
    assert_eq!(via_dynamodb(&stranger, "kms:Decrypt"), Decision::ImplicitDeny);
    assert_eq!(decide(&role, "kms:Encrypt"), Decision::ImplicitDeny, "not directly");

    // Deployers (IAM principals of the account) encrypt a function's
    // settings through Lambda, and do nothing else with the key.
    let via_lambda = |action: &str| {
        let request = Request::new(action, "*")
            .by(&root)
            .with("kms:ViaService", &format!("lambda.{REGION}.amazonaws.com"));
        evaluate(&policies, &request)
    };
    assert_eq!(via_lambda("kms:Encrypt"), Decision::Allow);
    assert_eq!(via_lambda("kms:Decrypt"), Decision::ImplicitDeny);

    // The services that encrypt for the stack.
    assert_eq!(
        decide("service:cloudwatch.amazonaws.com", "kms:GenerateDataKey"),
        Decision::Allow
    );
    assert_eq!(
        decide("service:events.amazonaws.com", "kms:GenerateDataKey"),
        Decision::Allow
    );
    assert_eq!(
        decide("service:s3.amazonaws.com", "kms:Decrypt"),
        Decision::ImplicitDeny
    );
}

#[test]
fn the_operator_and_read_only_policies() {
    // The placeholders of infra/README.md, filled in.
    let fill = |name: &str| -> Vec<Value> {
        let text = infra_file(&format!("policies/{name}"))
            .replace("<Partition>", "aws")
            .replace("<Region>", REGION)
            .replace("<AccountId>", ACCOUNT_ID)
            .replace("<BackupBucket>", "lifeboat-backups")
            .replace("<StorePrefix>", "lifeboat")
            .replace("<StoreKeyArn>", "arn:aws:kms:us-east-1:123456789012:key/k1")
            .replace("<DrKeyArn>", "arn:aws:kms:us-west-2:123456789012:key/k2")
            .replace("<CatalogTable>", "lifeboat-catalog")
            .replace("<RestoreBucket>", "lifeboat-restores")
            .replace("<HostedZoneId>", "Z123");
        assert!(
            !text.contains('<'),
            "policies/{name} has a placeholder the README does not list"
        );
        vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("policies/{name}: {e}"))]
    };
    let operator = fill("operator.json");
    let read_only = fill("read-only.json");
    let table = "arn:aws:dynamodb:us-east-1:123456789012:table/lifeboat-catalog";
    let store = |key: &str| format!("arn:aws:s3:::lifeboat-backups/lifeboat/{key}");
    let snapshot = "arn:aws:rds:us-east-1:123456789012:snapshot:lifeboat-app-1";
    let allow = |policies: &[Value], request: Request, expected: Decision| {
        assert_eq!(evaluate(policies, &request), expected, "{request:?}");
    };
    use Decision::{Allow, ImplicitDeny};
    for (request, for_operator, for_reader) in [
        (Request::new("s3:GetObject", &store("manifests/x")), Allow, Allow),
        (
            Request::new("s3:ListBucket", "arn:aws:s3:::lifeboat-backups").with("s3:prefix", "lifeboat/packs/"),
            Allow,
            Allow,
        ),
        (Request::new("s3:PutObject", &store("config")), Allow, ImplicitDeny),
        (
            Request::new("s3:DeleteObject", &store("packs/0a/x")),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("s3:PutObject", "arn:aws:s3:::lifeboat-restores/app/x"),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("s3:BypassGovernanceRetention", &store("packs/0a/x")),
            ImplicitDeny,
            ImplicitDeny,
        ),
        (
            Request::new("s3:PutBucketPolicy", "arn:aws:s3:::lifeboat-backups"),
            ImplicitDeny,
            ImplicitDeny,
        ),
        (
            Request::new("kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/k1"),
            Allow,
            Allow,
        ),
        (
            Request::new("kms:ReEncryptFrom", "arn:aws:kms:us-east-1:123456789012:key/k1"),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("kms:ScheduleKeyDeletion", "arn:aws:kms:us-east-1:123456789012:key/k1"),
            ImplicitDeny,
            ImplicitDeny,
        ),
        (
            Request::new("dynamodb:Query", &format!("{table}/index/bySource")),
            Allow,
            Allow,
        ),
        (Request::new("dynamodb:UpdateItem", table), Allow, ImplicitDeny),
        (Request::new("dynamodb:DeleteTable", table), ImplicitDeny, ImplicitDeny),
        (Request::new("rds:DescribeDBSnapshots", "*"), Allow, Allow),
        // Drills and restore tests tear down their own instances, nothing else;
        // snapshot retention deletes Lifeboat's snapshots only.
        (
            Request::new(
                "rds:DeleteDBInstance",
                "arn:aws:rds:us-west-2:123456789012:db:drill-orders-1a2b3c4d",
            ),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new(
                "rds:DeleteDBInstance",
                "arn:aws:rds:us-east-1:123456789012:db:orders-db",
            ),
            ImplicitDeny,
            ImplicitDeny,
        ),
        (Request::new("rds:DeleteDBSnapshot", snapshot), Allow, ImplicitDeny),
        (
            Request::new(
                "rds:DeleteDBSnapshot",
                "arn:aws:rds:us-east-1:123456789012:snapshot:orders-manual",
            ),
            ImplicitDeny,
            ImplicitDeny,
        ),
        (
            Request::new("rds:CreateDBInstanceReadReplica", "*"),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("rds:RestoreDBInstanceFromDBSnapshot", snapshot),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z123"),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("route53:ListResourceRecordSets", "arn:aws:route53:::hostedzone/Z123"),
            Allow,
            Allow,
        ),
        (Request::new("iam:PassRole", "*"), ImplicitDeny, ImplicitDeny),
    ] {
        allow(&operator, request.clone(), for_operator);
        allow(&read_only, request, for_reader);
    }
    // The read-only policy grants nothing but reads.
    for statement in read_only[0]["Statement"].as_array().unwrap() {
        for action in statement["Action"].as_array().unwrap() {
            let action = action.as_str().unwrap();
            let verb = action.split_once(':').unwrap().1;
            let reads = ["Get", "List", "Describe", "Query", "Scan", "Decrypt"];
            assert!(reads.iter().any(|r| verb.starts_with(r)), "read-only grants {action}");
        }
    }
}

#[test]
fn the_dr_template_has_a_rotating_key() {
    let template = template("lifeboat-dr.yaml");
    let stack = Stack::new(&template, "lifeboat-dr", &[("OperatorRoleArn", OPERATOR_ROLE)]);
    let keys = stack.resources_of_type("AWS::KMS::Key");
    assert_eq!(keys, ["DrKey"]);
    assert_eq!(props(stack.resource("DrKey"))["EnableKeyRotation"], true);
    assert_eq!(
        stack.property("DrKeyAlias", "TargetKeyId"),
        json!(stack.reference("DrKey"))
    );
    assert!(template["Outputs"]["DrKeyArn"].is_object());

    // The key policy trusts the primary stack's roles by their IAM path:
    // the DR stack needs only the primary stack's name, no role ARNs.
    let text = stack.property("DrKey", "KeyPolicy");
    let policy: Value = serde_json::from_str(text.as_str().unwrap()).expect("the DR key policy is JSON");
    let policies = [policy];
    let primary_template = self::template("lifeboat.yaml");
    let primary = Stack::new(&primary_template, STACK, &primary_parameters());
    let snapshot_role = primary.attribute("SnapshotRole", "Arn");
    let verify_role = primary.attribute("VerifyRole", "Arn");
    assert_eq!(
        snapshot_role,
        format!("arn:aws:iam::{ACCOUNT_ID}:role/lifeboat/{STACK}/{STACK}-SnapshotRole")
    );
    let via_rds = "rds.us-east-1.amazonaws.com";
    let copy = |principal: &str, action: &str, via: &str| {
        evaluate(
            &policies,
            &Request::new(action, "*").by(principal).with("kms:ViaService", via),
        )
    };
    // The primary snapshot role may use the DR key for copies, through RDS.
    for action in [
        "kms:CreateGrant",
        "kms:GenerateDataKey",
        "kms:Encrypt",
        "kms:DescribeKey",
    ] {
        assert_eq!(copy(&snapshot_role, action, via_rds), Decision::Allow, "{action}");
    }
    // ... not directly, and never to decrypt; it (and verify) may check the key.
    assert_eq!(
        copy(&snapshot_role, "kms:CreateGrant", "s3.us-east-1.amazonaws.com"),
        Decision::ImplicitDeny
    );
    assert_eq!(copy(&snapshot_role, "kms:Decrypt", via_rds), Decision::ImplicitDeny);
    for role in [&snapshot_role, &verify_role] {
        assert_eq!(
            evaluate(&policies, &Request::new("kms:DescribeKey", "*").by(role)),
            Decision::Allow,
            "{role}"
        );
    }
    // A role outside the path, another stack's, or another account's may not.
    for outsider in [
        format!("arn:aws:iam::{ACCOUNT_ID}:role/{STACK}-SnapshotRole"),
        format!("arn:aws:iam::{ACCOUNT_ID}:role/lifeboat/other-stack/{STACK}-SnapshotRole"),
        format!("arn:aws:iam::210987654321:role/lifeboat/{STACK}/{STACK}-SnapshotRole"),
        OPERATOR_ROLE.replace("lifeboat-operator", "lifeboat/lifeboat-operator"),
    ] {
        assert_eq!(
            copy(&outsider, "kms:CreateGrant", via_rds),
            Decision::ImplicitDeny,
            "{outsider}"
        );
        assert_eq!(
            evaluate(&policies, &Request::new("kms:DescribeKey", "*").by(&outsider)),
            Decision::ImplicitDeny,
            "{outsider}"
        );
    }
    // The operator restores from the copies.
    assert_eq!(
        evaluate(&policies, &Request::new("kms:Decrypt", "*").by(OPERATOR_ROLE)),
        Decision::Allow
    );
    // And the snapshot role's own policy grants what the copy needs on that key.
    let own = primary.role_policies("SnapshotRole");
    assert_eq!(
        evaluate(
            &own,
            &Request::new("kms:CreateGrant", DR_KEY).with("kms:GrantIsForAWSResource", "true")
        ),
        Decision::Allow
    );
}

/// The condition keys IAM derives from the caller: `aws:PrincipalArn` and
/// `aws:PrincipalAccount`, matched with ArnLike and StringEquals.
#[test]
fn policy_conditions_on_the_principal() {
    let policy = json!({"Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:CreateGrant", "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:PrincipalAccount": "111122223333", "kms:ViaService": "rds.us-west-2.amazonaws.com"},
            "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/lifeboat/prod/*"}
        }
    }]});
    let policies = [policy];
    let decide = |principal: &str, via: Option<&str>| {
        let mut request = Request::new("kms:CreateGrant", "*").by(principal);
        if let Some(via) = via {
            request = request.with("kms:ViaService", via);
        }
        evaluate(&policies, &request)
    };
    let rds = Some("rds.us-west-2.amazonaws.com");
    let cases = [
        (
            "arn:aws:iam::111122223333:role/lifeboat/prod/prod-SnapshotRole",
            rds,
            Decision::Allow,
        ),
        (
            "arn:aws:iam::111122223333:role/lifeboat/prod/nested/x",
            rds,
            Decision::Allow,
        ),
        (
            "arn:aws:iam::111122223333:role/lifeboat/prod/x",
            None,
            Decision::ImplicitDeny,
        ),
        (
            "arn:aws:iam::111122223333:role/lifeboat/prod/x",
            Some("s3.us-west-2.amazonaws.com"),
            Decision::ImplicitDeny,
        ),
        (
            "arn:aws:iam::111122223333:role/lifeboat/production/x",
            rds,
            Decision::ImplicitDeny,
        ),
        (
            "arn:aws:iam::111122223333:role/prod-SnapshotRole",
            rds,
            Decision::ImplicitDeny,
        ),
        (
            "arn:aws:iam::999999999999:role/lifeboat/prod/x",
            rds,
            Decision::ImplicitDeny,
        ),
        ("service:rds.amazonaws.com", rds, Decision::ImplicitDeny),
    ];
    for (principal, via, expected) in cases {
        assert_eq!(decide(principal, via), expected, "{principal} via {via:?}");
    }
}

// ---------------------------------------------------------------------------
// Deploying into the emulator
// ---------------------------------------------------------------------------

/// An IAM policy document as GetRolePolicy returns it (URL-encoded on AWS).
fn policy_document(text: &str) -> Value {
    let decoded = if text.trim_start().starts_with('{') {
        text.to_owned()
    } else {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).expect("percent-encoding"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("UTF-8 policy")
    };
    serde_json::from_str(&decoded).unwrap_or_else(|e| panic!("not a policy document ({e}): {decoded}"))
}

/// A deployment package for the emulator: an empty zip (CreateFunction in the
/// emulator stores it without running it).
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[tokio::test]
async fn the_primary_template_deploys_into_the_emulator() {
    let config = sdk_config().await;
    let cloudformation = aws_sdk_cloudformation::Client::new(&config);
    let s3 = s3_client().await;

    let code_bucket = unique("code");
    s3.create_bucket()
        .bucket(&code_bucket)
        .send()
        .await
        .expect("create code bucket");
    for function in ["file-backup", "verify", "retention", "alert", "snapshot"] {
        s3.put_object()
            .bucket(&code_bucket)
            .key(format!("lifeboat/{function}/bootstrap.zip"))
            .body(ByteStream::from(EMPTY_ZIP.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("upload the {function} package: {e}"));
    }

    let stack_name = unique("lifeboat");
    let table_name = unique("catalog");
    let parameters = [
        ("CodeBucket", code_bucket.as_str()),
        ("OperatorRoleArn", OPERATOR_ROLE),
        ("TableName", table_name.as_str()),
        ("PlanName", "app-nightly"),
        ("SourceBucket", "lifeboat-demo-data"),
        ("SourcePrefix", "app"),
        ("ContinuousBackup", "true"),
    ];
    let created = cloudformation
        .create_stack()
        .stack_name(&stack_name)
        .template_body(infra_file("lifeboat.yaml"))
        .capabilities(Capability::CapabilityIam)
        .set_parameters(Some(
            parameters
                .iter()
                .map(|(k, v)| Parameter::builder().parameter_key(*k).parameter_value(*v).build())
                .collect(),
        ))
        .send()
        .await
        .expect("create-stack");
    let stack_id = created.stack_id().expect("a stack id").to_owned();
    let described = cloudformation
        .describe_stacks()
        .stack_name(&stack_name)
        .send()
        .await
        .expect("describe-stacks");
    let stack = &described.stacks()[0];
    assert_eq!(
        stack.stack_status(),
        Some(&StackStatus::CreateComplete),
        "{:?}",
        stack.stack_status_reason()
    );
    let outputs: BTreeMap<String, String> = stack
        .outputs()
        .iter()
        .map(|o| (o.output_key().unwrap().to_owned(), o.output_value().unwrap().to_owned()))
        .collect();

    // The table, with the schema and flags the emulator keeps.
    assert_eq!(outputs["CatalogTableName"], table_name);
    let table = dynamodb_client()
        .await
        .describe_table()
        .table_name(&table_name)
        .send()
        .await
        .expect("the catalog table exists");
    let table = table.table().unwrap();
    let mut indexes: Vec<&str> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["bySource", "byTime"]);
    assert_eq!(table.deletion_protection_enabled(), Some(true));
    assert_eq!(
        table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str()),
        Some("PAY_PER_REQUEST")
    );

    // The key: enabled, rotating; the bucket encrypted with it.
    let key_arn = &outputs["StoreKeyArn"];
    let kms = kms_client().await;
    let key = kms
        .describe_key()
        .key_id(key_arn)
        .send()
        .await
        .expect("describe the key");
    assert!(key.key_metadata().unwrap().enabled());
    let rotation = kms
        .get_key_rotation_status()
        .key_id(key_arn)
        .send()
        .await
        .expect("key rotation status");
    assert!(rotation.key_rotation_enabled());
    let bucket = &outputs["BackupBucketName"];
    s3.head_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("the backup bucket exists");
    let encryption = s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket encryption");
    let rule = &encryption.server_side_encryption_configuration().unwrap().rules()[0];
    let default = rule.apply_server_side_encryption_by_default().unwrap();
    assert_eq!(default.sse_algorithm().as_str(), "aws:kms");
    assert_eq!(default.kms_master_key_id(), Some(key_arn.as_str()));
    assert_eq!(outputs["StoreUrl"], format!("s3://{bucket}/lifeboat"));

    // The topic, encrypted with the key.
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns
        .get_topic_attributes()
        .topic_arn(&outputs["AlertsTopicArn"])
        .send()
        .await
        .expect("the alerts topic exists");
    assert_eq!(topic.attributes().and_then(|a| a.get("KmsMasterKeyId")), Some(key_arn));

    // Continuous backup: S3's Object Created events for the source, to file-backup.
    let events = aws_sdk_eventbridge::Client::new(&config);
    let rule_name = format!("{stack_name}-file-backup-object-created");
    let rule = events
        .describe_rule()
        .name(&rule_name)
        .send()
        .await
        .expect("the Object Created rule exists");
    let pattern: Value = serde_json::from_str(rule.event_pattern().expect("a pattern")).expect("JSON pattern");
    assert_eq!(pattern["detail"]["bucket"]["name"], json!(["lifeboat-demo-data"]));
    assert_eq!(pattern["detail"]["object"]["key"], json!([{"prefix": "app/"}]));
    let targets = events
        .list_targets_by_rule()
        .rule(&rule_name)
        .send()
        .await
        .expect("the rule's targets");
    assert_eq!(targets.targets()[0].arn(), outputs["FileBackupFunctionArn"]);

    // The plans' schedules (a stack of their own) run as the scheduler's
    // role, under the stack's IAM path like every role here.
    assert!(
        outputs["SchedulerRoleArn"].contains(&format!(":role/lifeboat/{stack_name}/")),
        "{}",
        outputs["SchedulerRoleArn"]
    );
    assert!(outputs["DeadLetterQueueArn"].starts_with("arn:aws:sqs:"));

    // The other functions' schedules, each targeting its function with the
    // shape of its sample event.
    for (rule_suffix, output, sample_name, schedule) in [
        (
            "verify",
            "VerifyFunctionArn",
            "verify-scheduled.json",
            "cron(0 4 * * ? *)",
        ),
        (
            "retention-app-nightly",
            "RetentionFunctionArn",
            "retention-scheduled.json",
            "cron(0 5 * * ? *)",
        ),
        (
            "alert-app-nightly",
            "AlertFunctionArn",
            "alert-scheduled.json",
            "rate(1 hour)",
        ),
    ] {
        let rule_name = format!("{stack_name}-{rule_suffix}");
        let rule = events
            .describe_rule()
            .name(&rule_name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("the rule {rule_name} exists: {e}"));
        assert_eq!(rule.schedule_expression(), Some(schedule), "{rule_name}");
        let targets = events
            .list_targets_by_rule()
            .rule(&rule_name)
            .send()
            .await
            .expect("the rule's targets");
        let target = &targets.targets()[0];
        assert_eq!(target.arn(), outputs[output], "{rule_name}");
        let transformer = target.input_transformer().expect("an input transformer");
        let transformer = json!({
            "InputPathsMap": transformer.input_paths_map().unwrap(),
            "InputTemplate": transformer.input_template(),
        });
        let sample = sample_event(sample_name);
        let rendered = render_input(&transformer, &sample);
        assert_eq!(rendered["id"], sample["id"], "{rule_name}");
        assert_eq!(
            rendered["detail"]["store"].as_str().unwrap_or(&outputs["StoreUrl"]),
            outputs["StoreUrl"]
        );
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&rendered["detail"]), keys(&sample["detail"]), "{rule_name}");
    }

    // The role, assumable by Lambda only, with the template's policy.
    let iam = aws_sdk_iam::Client::new(&config);
    let role_name = outputs["FileBackupRoleArn"].rsplit('/').next().unwrap().to_owned();
    let role = iam
        .get_role()
        .role_name(&role_name)
        .send()
        .await
        .expect("the role exists");
    let trust = policy_document(role.role().unwrap().assume_role_policy_document().unwrap());
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"], "lambda.amazonaws.com",
        "{trust}"
    );
    let inline = iam
        .get_role_policy()
        .role_name(&role_name)
        .policy_name("file-backup")
        .send()
        .await
        .expect("the role's policy");
    let deployed = policy_document(inline.policy_document());
    let sids = |policy: &Value| -> Vec<String> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let template = template("lifeboat.yaml");
    let written = &template["Resources"]["FileBackupPolicy"]["Properties"]["PolicyDocument"];
    assert_eq!(sids(&deployed), sids(written));
    let store_objects = &deployed["Statement"][0];
    assert_eq!(store_objects["Resource"], format!("arn:aws:s3:::{bucket}/lifeboat/*"));

    // Deleting the stack keeps the catalog (DeletionPolicy Retain, deletion
    // protection): the backups' records outlive the stack.
    cloudformation
        .delete_stack()
        .stack_name(&stack_id)
        .send()
        .await
        .expect("delete-stack");
    let after = cloudformation.describe_stacks().stack_name(&stack_name).send().await;
    assert!(after.is_err(), "the stack is gone: {after:?}");
    dynamodb_client()
        .await
        .describe_table()
        .table_name(&table_name)
        .send()
        .await
        .expect("the catalog table survives the stack");
}

/// `scripts/deploy`, the README's deploy path, against the emulator: it
/// uploads the package, creates both stacks, and a second run updates them.
#[tokio::test]
async fn scripts_deploy_creates_then_updates_the_stacks() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let package = dir.path().join("bootstrap.zip");
    std::fs::write(&package, EMPTY_ZIP).expect("write the package");
    let stack = unique("deployed");
    let table = unique("catalog");
    let deploy = || {
        let output = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/deploy"))
            .args([
                "--stack",
                &stack,
                "--code-bucket",
                &unique("code"),
                "--operator-role-arn",
                OPERATOR_ROLE,
            ])
            .args(["--parameter", "SourceBucket=lifeboat-demo-data", "--parameter"])
            .arg(format!("TableName={table}"))
            .args(
                ["file-backup", "verify", "retention", "alert", "snapshot"]
                    .iter()
                    .flat_map(|function| ["--package".to_owned(), format!("{function}={}", package.display())]),
            )
            .args(["--dr-region", "us-west-2"])
            .args([
                "--plans",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/plans.toml"),
            ])
            .env("LIFEBOAT_BIN", lifeboat_e2e::workspace_bin("lifeboat"))
            .envs(lifeboat_e2e::aws_env())
            .output()
            .expect("run scripts/deploy");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "scripts/deploy failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let first = deploy();
    assert!(first.contains(&format!("CatalogTableName={table}\n")), "{first}");
    assert!(first.contains("StoreUrl=s3://"), "{first}");
    assert!(first.contains("\nDrKeyArn=arn:aws:kms:us-west-2:"), "{first}");
    // The plans' schedules, a third stack, from the plan file.
    assert!(
        first.contains(&format!("SchedulesStack={stack}-schedules\n")),
        "{first}"
    );
    // The DR key trusts the primary stack's roles by name: nothing to pair.
    let cloudformation = aws_sdk_cloudformation::Client::new(&lifeboat_e2e::sdk_config_in("us-west-2").await);
    let dr = cloudformation
        .describe_stacks()
        .stack_name(format!("{stack}-dr"))
        .send()
        .await
        .expect("the DR stack");
    let primary_stack = dr.stacks()[0]
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("PrimaryStack"))
        .and_then(|p| p.parameter_value());
    assert_eq!(primary_stack, Some(stack.as_str()));
    let second = deploy();
    assert!(second.contains(&format!("CatalogTableName={table}\n")), "{second}");
}

// ---------------------------------------------------------------------------
// The plans' schedules and continuous backup
// ---------------------------------------------------------------------------

/// The plans' schedules (generated, `lifeboat plan schedules`) run as the
/// scheduler's role: it may invoke the snapshot and file-backup functions
/// and dead-letter to the queue, nothing else; the key lets it encrypt
/// dead letters through SQS only.
#[test]
fn the_scheduler_role_only_runs_the_plans() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let r = Resources::of(&stack);
    let trust = stack.property("SchedulerRole", "AssumeRolePolicyDocument");
    assert_eq!(trust["Statement"][0]["Principal"]["Service"], "scheduler.amazonaws.com");
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"],
        ACCOUNT_ID
    );
    let policies = stack.role_policies("SchedulerRole");
    let function = |logical: &str| stack.attribute(logical, "Arn");
    let via_sqs = format!("sqs.{REGION}.amazonaws.com");
    let allowed = [
        Request::new("lambda:InvokeFunction", &function("SnapshotFunction")),
        Request::new("lambda:InvokeFunction", &function("FileBackupFunction")),
        Request::new("sqs:SendMessage", &r.queue),
        Request::new("kms:GenerateDataKey", &r.key).with("kms:ViaService", &via_sqs),
    ];
    let denied = [
        Request::new("lambda:InvokeFunction", &function("RetentionFunction")),
        Request::new("lambda:InvokeFunction", &function("VerifyFunction")),
        Request::new("lambda:InvokeFunction", &function("AlertFunction")),
        Request::new("lambda:UpdateFunctionCode", &function("FileBackupFunction")),
        Request::new("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:another-queue"),
        Request::new("sqs:ReceiveMessage", &r.queue),
        Request::new("kms:GenerateDataKey", &r.key),
        Request::new("kms:Decrypt", &r.key).with("kms:ViaService", &format!("s3.{REGION}.amazonaws.com")),
        Request::new("s3:GetObject", &r.object("lifeboat/config")),
        Request::new("iam:PassRole", "*"),
    ];
    assert_decisions("SchedulerRole", &policies, &allowed, &denied);

    // The key policy names the role for dead letters through SQS only.
    let policy: Value = serde_json::from_str(stack.property("StoreKey", "KeyPolicy").as_str().unwrap()).unwrap();
    let key_policies = [policy];
    let role = stack.attribute("SchedulerRole", "Arn");
    let through = |via: &str| {
        evaluate(
            &key_policies,
            &Request::new("kms:GenerateDataKey", "*")
                .by(&role)
                .with("kms:ViaService", via),
        )
    };
    assert_eq!(through(&via_sqs), Decision::Allow);
    assert_eq!(through(&format!("s3.{REGION}.amazonaws.com")), Decision::ImplicitDeny);

    // The primary stack exports what the schedules' stack imports.
    for output in [
        "SnapshotFunctionArn",
        "FileBackupFunctionArn",
        "SchedulerRoleArn",
        "DeadLetterQueueArn",
    ] {
        let export = stack.resolve(&template["Outputs"][output]["Export"]["Name"]);
        assert_eq!(export, json!(format!("{STACK}-{output}")), "{output}");
    }
    // The functions run plans from the plan file.
    let plans = "s3://lifeboat-code/lifeboat/plans.toml";
    for function in ["SnapshotFunction", "FileBackupFunction"] {
        let environment = stack.property(function, "Environment");
        assert_eq!(environment["Variables"]["LIFEBOAT_PLANS"], plans, "{function}");
    }
    let file_backup = stack.role_policies("FileBackupRole");
    assert_eq!(
        evaluate(
            &file_backup,
            &Request::new("s3:GetObject", "arn:aws:s3:::lifeboat-code/lifeboat/plans.toml")
        ),
        Decision::Allow
    );
}

/// Continuous backup is off unless asked for; on, the rule matches S3's
/// Object Created events under the source prefix (the sample) and no others.
#[test]
fn the_object_created_rule_matches_the_sources_new_objects() {
    let template = template("lifeboat.yaml");
    let off = Stack::new(&template, STACK, &primary_parameters());
    assert!(!off.condition("HasContinuousBackup"));
    let on = Stack::new(
        &template,
        STACK,
        &[primary_parameters(), vec![("ContinuousBackup", "true")]].concat(),
    );
    assert!(on.condition("HasContinuousBackup"));
    let pattern = on.property("FileBackupObjectCreated", "EventPattern");
    let prefix = pattern["detail"]["object"]["key"][0]["prefix"]
        .as_str()
        .expect("a key prefix");
    assert_eq!(prefix, "app/");
    let matches = |event: &Value| {
        let listed = |field: &Value, value: &Value| field.as_array().is_some_and(|l| l.contains(value));
        listed(&pattern["source"], &event["source"])
            && listed(&pattern["detail-type"], &event["detail-type"])
            && listed(&pattern["detail"]["bucket"]["name"], &event["detail"]["bucket"]["name"])
            && event["detail"]["object"]["key"]
                .as_str()
                .is_some_and(|key| key.starts_with(prefix))
    };
    let sample = sample_event("s3-object-created-eventbridge.json");
    assert!(matches(&sample));
    let mut elsewhere = sample.clone();
    elsewhere["detail"]["object"]["key"] = json!("other/x.csv");
    assert!(!matches(&elsewhere));
    let mut other_bucket = sample.clone();
    other_bucket["detail"]["bucket"]["name"] = json!("someone-elses");
    assert!(!matches(&other_bucket));
    let target = &on.property("FileBackupObjectCreated", "Targets")[0];
    assert_eq!(target["Arn"], on.attribute("FileBackupFunction", "Arn").as_str());
    assert!(
        target["InputTransformer"].is_null(),
        "S3's events are delivered as they are"
    );
    assert_eq!(
        target["DeadLetterConfig"]["Arn"],
        on.attribute("DeadLetterQueue", "Arn").as_str()
    );
    assert_eq!(
        on.property("FileBackupObjectCreatedPermission", "SourceArn"),
        on.attribute("FileBackupObjectCreated", "Arn").as_str()
    );
    let sources = &on.property("DeadLetterQueuePolicy", "PolicyDocument")["Statement"][0]["Condition"]["ArnEquals"]
        ["aws:SourceArn"];
    assert!(sources
        .as_array()
        .unwrap()
        .contains(&json!(on.attribute("FileBackupObjectCreated", "Arn"))));
    // A whole-bucket source matches every key.
    let whole = Stack::new(
        &template,
        STACK,
        &[
            primary_parameters(),
            vec![("ContinuousBackup", "true"), ("SourcePrefix", "")],
        ]
        .concat(),
    );
    let pattern = whole.property("FileBackupObjectCreated", "EventPattern");
    assert_eq!(pattern["detail"]["object"]["key"], json!([{"prefix": ""}]));
}

/// `lifeboat plan schedules` of the sample plan file: one schedule per plan
/// and function, with the plan's expression and time zone and the
/// function's direct-invoke payload; cfn-lint accepts it; the emulator
/// creates the stack (it skips the Scheduler types: a smoke test only).
#[tokio::test]
async fn the_plans_schedules_template_is_one_schedule_per_plan() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/plans.toml");
    let output = std::process::Command::new(lifeboat_e2e::workspace_bin("lifeboat"))
        .args(["plan", "schedules", file])
        .output()
        .expect("run lifeboat plan schedules");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let generated: Value = serde_json::from_str(&text).expect("the template is JSON");
    let plans = lifeboat::plan::parse_plans(&std::fs::read_to_string(file).expect("read"), jiff::Timestamp::now())
        .expect("the sample plans are valid");
    let schedules: Vec<&Value> = generated["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Scheduler::Schedule")
        .collect();
    let mut expected_count = 0;
    for plan in &plans {
        let snapshot = !plan.tags.is_empty() || !plan.resources.is_empty() || !plan.database_sources().is_empty();
        let files = plan.sources.iter().any(|s| !lifeboat::plan::is_database_url(s));
        for (runs, function, export) in [
            (snapshot, "snapshot", "SnapshotFunctionArn"),
            (files, "file-backup", "FileBackupFunctionArn"),
        ] {
            let found: Vec<&&Value> = schedules
                .iter()
                .filter(|s| s["Properties"]["Name"] == format!("{}-{function}", plan.name))
                .collect();
            assert_eq!(found.len(), usize::from(runs), "plan {} by {function}", plan.name);
            let Some(schedule) = found.first() else { continue };
            expected_count += 1;
            let p = &schedule["Properties"];
            assert_eq!(p["ScheduleExpression"], plan.schedule_text.as_str());
            assert_eq!(p["ScheduleExpressionTimezone"], plan.timezone.as_str());
            assert_eq!(p["FlexibleTimeWindow"]["Mode"], "OFF");
            assert_eq!(p["State"], "ENABLED");
            let target = &p["Target"];
            assert_eq!(
                target["Arn"],
                json!({"Fn::ImportValue": {"Fn::Sub": format!("${{PrimaryStack}}-{export}")}})
            );
            assert_eq!(
                target["RoleArn"],
                json!({"Fn::ImportValue": {"Fn::Sub": "${PrimaryStack}-SchedulerRoleArn"}})
            );
            assert_eq!(
                target["DeadLetterConfig"]["Arn"],
                json!({"Fn::ImportValue": {"Fn::Sub": "${PrimaryStack}-DeadLetterQueueArn"}})
            );
            assert!(target["RetryPolicy"]["MaximumRetryAttempts"]
                .as_u64()
                .is_some_and(|n| n > 0));
            let input: Value = serde_json::from_str(target["Input"].as_str().unwrap()).expect("JSON input");
            assert_eq!(
                input,
                json!({"plan": plan.name, "scheduledTime": "<aws.scheduler.scheduled-time>"})
            );
        }
    }
    assert_eq!(schedules.len(), expected_count, "no schedule for anything else");
    // The primary stack exports every name the generated stack imports.
    let primary = template("lifeboat.yaml");
    for import in text.match_indices("${PrimaryStack}-").map(|(i, _)| &text[i + 16..]) {
        let name: String = import.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        assert!(
            primary["Outputs"][&name]["Export"].is_object(),
            "the primary stack exports {name}"
        );
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("schedules.json");
    std::fs::write(&path, &text).expect("write the template");
    let lint = std::process::Command::new("cfn-lint").arg(&path).output();
    match lint {
        Ok(lint) => assert!(
            lint.status.success(),
            "cfn-lint: {}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        ),
        Err(e) => eprintln!("cfn-lint is not on the PATH ({e}); scripts/setup installs it"),
    }

    let cloudformation = aws_sdk_cloudformation::Client::new(&sdk_config().await);
    let name = unique("schedules");
    cloudformation
        .create_stack()
        .stack_name(&name)
        .template_body(&text)
        .parameters(
            Parameter::builder()
                .parameter_key("PrimaryStack")
                .parameter_value("lifeboat")
                .build(),
        )
        .send()
        .await
        .expect("create-stack of the schedules");
    let described = cloudformation
        .describe_stacks()
        .stack_name(&name)
        .send()
        .await
        .expect("describe-stacks");
    assert_eq!(described.stacks()[0].stack_status(), Some(&StackStatus::CreateComplete));
}
