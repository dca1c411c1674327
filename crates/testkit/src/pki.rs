//! Certificates: a CA and a server leaf for the TLS registry, and the
//! self-signed ES256 token-signing certificate for the token server.

use std::net::{IpAddr, Ipv4Addr};

use p256::pkcs8::DecodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A generated CA, a server leaf for 127.0.0.1 and localhost that it
/// signed, and a client leaf it signed too (for registries that require
/// client certificates).
pub(crate) struct ServerTls {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) client_cert_pem: String,
    pub(crate) client_key_pem: String,
}

pub(crate) fn server_tls() -> ServerTls {
    let ca_key = KeyPair::generate().expect("generate CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hoist-testkit CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("self-sign CA");

    let leaf_key = KeyPair::generate().expect("generate leaf key");
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
    leaf.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    leaf.distinguished_name
        .push(DnType::CommonName, "hoist-testkit registry");
    leaf.is_ca = IsCa::NoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&leaf_key, &ca).expect("sign leaf");

    let client_key = KeyPair::generate().expect("generate client key");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("client params");
    client
        .distinguished_name
        .push(DnType::CommonName, "hoist-testkit client");
    client.is_ca = IsCa::NoCa;
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &ca).expect("sign client");

    ServerTls {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: leaf_key.serialize_pem(),
        client_cert_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// The token server's signing key and its self-signed certificate (the
/// registry's `rootcertbundle`).
pub(crate) struct TokenSigner {
    pub(crate) cert_pem: String,
    pub(crate) cert_der: Vec<u8>,
    pub(crate) key: p256::ecdsa::SigningKey,
}

pub(crate) fn token_signer() -> TokenSigner {
    // rcgen's default key is ECDSA P-256, exactly what ES256 needs.
    let key_pair = KeyPair::generate().expect("generate token signing key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("signer params");
    params
        .distinguished_name
        .push(DnType::CommonName, "hoist-testkit token signer");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key_pair).expect("self-sign signer");
    let secret = p256::SecretKey::from_pkcs8_der(&key_pair.serialize_der())
        .expect("token signing key as p256");
    TokenSigner {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key: p256::ecdsa::SigningKey::from(secret),
    }
}
