# The CA of a TLS-intercepting proxy (--ca-cert): appended to the system bundle, which pip,
# requests and OpenSSL are pointed at.
COPY {{context_ca_cert}} /usr/local/share/ca-certificates/dlbox-extra-ca.crt
RUN cat /usr/local/share/ca-certificates/dlbox-extra-ca.crt >> /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
