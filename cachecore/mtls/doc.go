// Package mtls builds the TLS configurations of the data path between cache
// clients and workers: both sides present a certificate of the cluster's CA,
// and nothing else is accepted. Workers' certificates name ServerName
// (workers move between addresses; the CA, not the address, is what is
// trusted); clients' certificates are for client authentication.
//
// Generate makes a CA and the two certificates for tests and local clusters
// (`hoard certs`); production certificates come from files (a Secret).
//
// It never logs or returns private keys.
package mtls
