//! `wsdl/ECGridOS.wsdl` is generated from the contract
//! (`contract/ecgridos-v4.1-contract.json`). These tests read both
//! independently of the generator and check that the WSDL describes every
//! operation, message, complex type and enumeration exactly as the contract
//! has them, with the contract's service, binding and port names; and that the
//! hand-written declarations of `src/operations.rs` agree with it.

use std::collections::BTreeMap;

use ecgridos::operations::CATALOG;
use ecgridos::{AuthLevel, SessionInfo};
use quick_xml::events::Event;
use quick_xml::Reader;

#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: BTreeMap<String, String>,
    children: Vec<Node>,
}

impl Node {
    fn local(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
    fn descendants<'a>(&'a self, out: &mut Vec<&'a Node>) {
        for c in &self.children {
            out.push(c);
            c.descendants(out);
        }
    }
    fn all(&self, local: &str) -> Vec<&Node> {
        let mut out = Vec::new();
        self.descendants(&mut out);
        out.into_iter().filter(|n| n.local() == local).collect()
    }
}

fn node(e: &quick_xml::events::BytesStart<'_>) -> Node {
    let mut node = Node {
        name: e.name().into_inner().to_string(),
        ..Node::default()
    };
    for a in e.attributes() {
        let a = a.unwrap();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .unwrap();
        node.attrs
            .insert(a.key.into_inner().to_string(), value.into_owned());
    }
    node
}

fn parse(text: &str) -> Node {
    let mut reader = Reader::from_str(text);
    let mut stack = vec![Node::default()];
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => stack.push(node(&e)),
            Event::Empty(e) => stack.last_mut().unwrap().children.push(node(&e)),
            Event::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    stack.pop().unwrap()
}

fn wsdl() -> Node {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wsdl/ECGridOS.wsdl"))
        .unwrap();
    let root = parse(&text);
    root.children
        .into_iter()
        .find(|n| n.local() == "definitions")
        .expect("wsdl:definitions")
}

fn schema_element<'a>(doc: &'a Node, name: &str) -> &'a Node {
    let schema = &doc.all("schema")[0];
    schema
        .children
        .iter()
        .find(|n| n.local() == "element" && n.attr("name") == Some(name))
        .unwrap_or_else(|| panic!("WSDL has no element {name}"))
}

fn contract() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contract/ecgridos-v4.1-contract.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A contract field as the WSDL writes it: name, type, minOccurs, maxOccurs, nillable.
type Occ = (String, String, String, String, bool);

fn contract_field(f: &serde_json::Value) -> Occ {
    (
        f["name"].as_str().unwrap().to_string(),
        f["type"].as_str().unwrap().to_string(),
        f["min"].to_string(),
        f["max"].as_str().unwrap().to_string(),
        f["nillable"].as_bool().unwrap_or(false),
    )
}

fn wsdl_fields(element: &Node) -> Vec<Occ> {
    element
        .all("sequence")
        .first()
        .map(|seq| {
            seq.children
                .iter()
                .map(|c| {
                    (
                        c.attr("name").unwrap().to_string(),
                        c.attr("type").unwrap_or("dataset").to_string(),
                        c.attr("minOccurs").unwrap().to_string(),
                        c.attr("maxOccurs").unwrap().to_string(),
                        c.attr("nillable") == Some("true"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_operation_as_in_the_contract() {
    let doc = wsdl();
    let c = contract();
    assert_eq!(doc.attr("targetNamespace"), c["namespace"].as_str());
    let ops = c["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 221);
    let port_ops: Vec<_> = doc.all("portType")[0]
        .children
        .iter()
        .filter(|n| n.local() == "operation")
        .map(|n| n.attr("name").unwrap().to_string())
        .collect();
    let names: Vec<_> = ops
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(port_ops, names);
    for op in ops {
        let name = op["name"].as_str().unwrap();
        let params: Vec<_> = op["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(contract_field)
            .collect();
        assert_eq!(
            wsdl_fields(schema_element(&doc, name)),
            params,
            "parameters of {name}"
        );
        let response = schema_element(&doc, &format!("{name}Response"));
        let result = contract_field(&op["result"]);
        assert_eq!(
            wsdl_fields(response),
            vec![result.clone()],
            "result of {name}"
        );
        if result.1 == "dataset" {
            // The asmx DataSet shape: an inline schema followed by any content.
            let seq = response.all("sequence");
            let inner: Vec<_> = seq[1]
                .children
                .iter()
                .map(|n| (n.local().to_string(), n.attr("ref").map(str::to_string)))
                .collect();
            assert_eq!(
                inner,
                [
                    ("element".to_string(), Some("s:schema".to_string())),
                    ("any".to_string(), None)
                ],
                "DataSet shape of {name}"
            );
        }
    }
    let bindings: Vec<_> = doc
        .all("binding")
        .into_iter()
        .filter(|b| b.attr("type").is_some())
        .collect();
    let expected_bindings = [
        c["soap11"]["binding"].as_str().unwrap(),
        c["soap12"]["binding"].as_str().unwrap(),
    ];
    let binding_names: Vec<_> = bindings.iter().map(|b| b.attr("name").unwrap()).collect();
    assert_eq!(binding_names, expected_bindings);
    for binding in bindings {
        let actions: Vec<_> = binding
            .children
            .iter()
            .filter(|n| n.local() == "operation")
            .map(|op| {
                let soap_op = op
                    .children
                    .iter()
                    .find(|c| c.local() == "operation")
                    .unwrap();
                assert_eq!(soap_op.attr("style"), Some("document"));
                assert!(op
                    .all("body")
                    .iter()
                    .all(|b| b.attr("use") == Some("literal")));
                (
                    op.attr("name").unwrap().to_string(),
                    soap_op.attr("soapAction").unwrap().to_string(),
                )
            })
            .collect();
        let expected: Vec<_> = ops
            .iter()
            .map(|o| {
                let name = o["name"].as_str().unwrap();
                let action = o["soap_action"].as_str().unwrap();
                assert_eq!(
                    action,
                    ecgridos::wire::soap_action(c["namespace"].as_str().unwrap(), name)
                );
                (name.to_string(), action.to_string())
            })
            .collect();
        assert_eq!(
            actions,
            expected,
            "soapActions of {:?}",
            binding.attr("name")
        );
    }
    let service = &doc.all("service")[0];
    assert_eq!(service.attr("name"), c["service"].as_str());
    let ports: Vec<_> = service
        .children
        .iter()
        .map(|p| (p.attr("name").unwrap(), p.attr("binding").unwrap()))
        .collect();
    assert_eq!(
        ports,
        [
            (
                c["soap11"]["port"].as_str().unwrap(),
                format!("tns:{}", expected_bindings[0]).as_str()
            ),
            (
                c["soap12"]["port"].as_str().unwrap(),
                format!("tns:{}", expected_bindings[1]).as_str()
            ),
        ]
    );
}

#[test]
fn every_type_and_enumeration_as_in_the_contract() {
    let doc = wsdl();
    let c = contract();
    let types: Vec<_> = doc
        .all("complexType")
        .into_iter()
        .filter(|t| t.attr("name").is_some())
        .collect();
    let contract_types = c["complex_types"].as_array().unwrap();
    assert_eq!(types.len(), contract_types.len());
    assert_eq!(types.len(), 73);
    for (t, ct) in types.iter().zip(contract_types) {
        assert_eq!(t.attr("name"), ct["name"].as_str());
        let fields: Vec<_> = ct["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(contract_field)
            .collect();
        assert_eq!(wsdl_fields(t), fields, "fields of {:?}", t.attr("name"));
    }
    let enums = doc.all("simpleType");
    let contract_enums = c["enumerations"].as_array().unwrap();
    assert_eq!(enums.len(), 44);
    assert_eq!(enums.len(), contract_enums.len());
    for (e, ce) in enums.iter().zip(contract_enums) {
        assert_eq!(e.attr("name"), ce["name"].as_str());
        assert_eq!(e.all("restriction")[0].attr("base"), ce["base"].as_str());
        let values: Vec<_> = e
            .all("enumeration")
            .into_iter()
            .map(|v| v.attr("value").unwrap().to_string())
            .collect();
        let expected: Vec<_> = ce["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(values, expected, "values of {:?}", e.attr("name"));
    }
}

#[test]
fn hand_written_declarations_agree() {
    let doc = wsdl();
    for spec in CATALOG {
        let params: Vec<_> = wsdl_fields(schema_element(&doc, spec.name))
            .into_iter()
            .map(|f| (f.0, f.1))
            .collect();
        let declared: Vec<_> = spec
            .params
            .iter()
            .map(|p| (p.name.to_string(), p.xsd_type.to_string()))
            .collect();
        assert_eq!(params, declared, "parameters of {}", spec.name);
        let result: Vec<_> = wsdl_fields(schema_element(&doc, &format!("{}Response", spec.name)))
            .into_iter()
            .map(|f| (f.0, f.1))
            .collect();
        assert_eq!(
            result,
            vec![(format!("{}Result", spec.name), spec.result_type.to_string())],
            "result of {}",
            spec.name
        );
    }
    let info = doc
        .all("complexType")
        .into_iter()
        .find(|t| t.attr("name") == Some("SessionInfo"))
        .unwrap();
    let fields: Vec<_> = wsdl_fields(info).into_iter().map(|f| f.0).collect();
    assert_eq!(fields, SessionInfo::FIELDS);
    let levels: Vec<_> = doc
        .all("simpleType")
        .into_iter()
        .find(|t| t.attr("name") == Some("AuthLevel"))
        .unwrap()
        .all("enumeration")
        .into_iter()
        .map(|e| e.attr("value").unwrap().to_string())
        .collect();
    let known: Vec<_> = AuthLevel::KNOWN
        .iter()
        .map(|l| l.as_str().to_string())
        .collect();
    assert_eq!(levels, known);
}
