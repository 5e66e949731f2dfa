//! Certificates made by the test (rcgen): a CA, node and client
//! certificates signed by it, and the bad ones (expired, for another host,
//! from another CA), as PEM files; and the `-ssl_dist_optfile` a TLS node
//! starts with.

use super::{scratch, short_host, NodeSpec};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pair {
    pub fn cert_arg(&self) -> String {
        self.cert.to_string_lossy().into_owned()
    }

    pub fn key_arg(&self) -> String {
        self.key.to_string_lossy().into_owned()
    }
}

pub struct Pki {
    pub dir: PathBuf,
    /// The CA's own key and parameters, for [`Pki::node_for_names`].
    authority: Authority,
    /// The CA that signs every certificate below but `stranger`'s.
    pub ca: PathBuf,
    /// Another CA, which signed nothing the nodes know.
    pub other_ca: PathBuf,
    /// For this machine's host name (and `localhost`, and `::1`).
    pub node: Pair,
    /// For a host that is not this one.
    pub elsewhere: Pair,
    /// Expired a long time ago.
    pub node_expired: Pair,
    /// This tool's certificate.
    pub client: Pair,
    pub client_expired: Pair,
    /// A client certificate from `other_ca`.
    pub stranger: Pair,
    /// For this machine's host name, signed by its own key.
    pub self_signed: Pair,
}

struct Authority {
    params: CertificateParams,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Authority {
            params,
            key: KeyPair::generate().expect("key"),
        }
    }

    fn write(&self, path: &Path) {
        let cert = self.params.self_signed(&self.key).expect("self-signed");
        std::fs::write(path, cert.pem()).expect("write CA");
        std::fs::write(path.with_extension("key"), self.key.serialize_pem()).expect("write CA key");
    }

    /// A leaf for `hosts` signed by its own key.
    fn self_signed(&self, dir: &Path, name: &str, hosts: &[String]) -> Pair {
        let mut params = CertificateParams::new(hosts.to_vec()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        write_pair(dir, name, &cert, &key)
    }

    /// A leaf for `hosts`, valid now unless `expired`.
    fn issue(&self, dir: &Path, name: &str, hosts: &[String], expired: bool) -> Pair {
        let params = CertificateParams::new(hosts.to_vec()).expect("params");
        self.sign(dir, name, params, expired)
    }

    /// A leaf of `params`, valid now unless `expired`.
    fn sign(&self, dir: &Path, name: &str, mut params: CertificateParams, expired: bool) -> Pair {
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("signed");
        write_pair(dir, name, &cert, &key)
    }
}

/// `cert` and `key` as `dir/NAME.pem` and `dir/NAME.key`.
fn write_pair(dir: &Path, name: &str, cert: &rcgen::Certificate, key: &KeyPair) -> Pair {
    let pair = Pair {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&pair.cert, cert.pem()).expect("write cert");
    std::fs::write(&pair.key, key.serialize_pem()).expect("write key");
    pair
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let dir = scratch(tag);
        let ca = Authority::new("hotswap test CA");
        let other = Authority::new("another CA");
        let here = vec![short_host(), "localhost".to_owned(), "::1".to_owned()];
        let there = vec!["elsewhere.invalid".to_owned()];
        let pki = Pki {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other_ca.pem"),
            node: ca.issue(&dir, "node", &here, false),
            elsewhere: ca.issue(&dir, "elsewhere", &there, false),
            node_expired: ca.issue(&dir, "node_expired", &here, true),
            client: ca.issue(&dir, "client", &["hotswap".to_owned()], false),
            client_expired: ca.issue(&dir, "client_expired", &["hotswap".to_owned()], true),
            stranger: other.issue(&dir, "stranger", &["hotswap".to_owned()], false),
            self_signed: Authority::new(&short_host()).self_signed(&dir, "self_signed", &here),
            dir,
            authority: ca,
        };
        pki.authority.write(&pki.ca);
        other.write(&pki.other_ca);
        pki
    }

    /// A version-1 certificate (no extensions: no names but its subject's
    /// common name `cn`) signed by the CA, `ca_file` (`ca.pem`, or
    /// `other_ca.pem`), made as the usual one-liner for a test CA makes it
    /// with OpenSSL 3.0: `openssl x509 -req`.
    #[allow(dead_code)]
    pub fn v1(&self, file: &str, cn: &str, ca_file: &Path) -> Pair {
        let pair = Pair {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        let csr = self.dir.join(format!("{file}.csr"));
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let (key, csr_s, cert) = (
            pair.key_arg(),
            csr.to_string_lossy().into_owned(),
            pair.cert_arg(),
        );
        let subject = format!("/CN={cn}");
        openssl(&[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-subj", &subject,
            "-out", &csr_s,
        ]);
        let ca = ca_file.to_string_lossy().into_owned();
        let ca_key = ca_file.with_extension("key").to_string_lossy().into_owned();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr_s,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &cert,
        ]);
        let text = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in", &cert])
            .output()
            .expect("openssl runs");
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("Version: 1"),
            "not a version-1 certificate:\n{text}"
        );
        pair
    }

    /// A node certificate whose names are `names`, each as a DNS name and,
    /// for an address, also as that address: a node named by an address
    /// (`a@127.0.0.1`) is checked by the nodes it connects to against that
    /// address as a DNS name (OTP's `inet_tls_dist` gives it as the server
    /// name), and by this tool as an address.
    #[allow(dead_code)]
    pub fn node_for_names(&self, file: &str, names: &[&str]) -> Pair {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        for name in names {
            let dns = rcgen::string::Ia5String::try_from(name.to_string()).expect("ASCII");
            params.subject_alt_names.push(SanType::DnsName(dns));
            if let Ok(ip) = name.parse() {
                params.subject_alt_names.push(SanType::IpAddress(ip));
            }
        }
        self.authority.sign(&self.dir, file, params, false)
    }

    /// The `-ssl_dist_optfile` of a node with certificate `node` that
    /// requires a client certificate from the CA (`verify_peer`,
    /// `fail_if_no_peer_cert`), speaking only `version` (`tlsv1.2`,
    /// `tlsv1.3`).
    pub fn dist_optfile(&self, node: &Pair, version: &str) -> PathBuf {
        let common = format!(
            "{{certfile, \"{}\"}}, {{keyfile, \"{}\"}}, {{cacertfile, \"{}\"}}, {{verify, verify_peer}}, {{versions, ['{version}']}}",
            node.cert.display(),
            node.key.display(),
            self.ca.display()
        );
        let text = format!(
            "[{{server, [{common}, {{fail_if_no_peer_cert, true}}]}},\n {{client, [{common}, {{server_name_indication, disable}}]}}].\n"
        );
        let path = self
            .dir
            .join(format!("dist-{}-{version}.conf", node_stem(node)));
        std::fs::write(&path, text).expect("write optfile");
        path
    }

    /// The flags that give the tool the CA and its client certificate.
    pub fn tool_args(&self) -> Vec<String> {
        vec![
            "--tls-ca".into(),
            self.ca.to_string_lossy().into_owned(),
            "--tls-cert".into(),
            self.client.cert_arg(),
            "--tls-key".into(),
            self.client.key_arg(),
        ]
    }
}

fn node_stem(pair: &Pair) -> String {
    pair.cert
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl NodeSpec {
    /// Distribution over TLS with the given `-ssl_dist_optfile`.
    pub fn tls(self, optfile: &Path) -> Self {
        self.arg("-proto_dist")
            .arg("inet_tls")
            .arg("-ssl_dist_optfile")
            .arg(&optfile.to_string_lossy())
    }
}
