-- One database per party (DESIGN §7: each party keeps its own state), created on the first
-- start of the postgres container (/docker-entrypoint-initdb.d). Owned by POSTGRES_USER.
CREATE DATABASE centralbank;
CREATE DATABASE issuer;
CREATE DATABASE bank;
CREATE DATABASE supervision;
CREATE DATABASE merchant_a;
CREATE DATABASE merchant_b;
CREATE DATABASE ttp;
