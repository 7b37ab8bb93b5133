"""Validates a kit's provenance with the in-toto attestation framework's Python bindings
(in-toto-attestation): the DSSE payload must parse strictly (unknown fields are errors) as an
in-toto Statement v1 and its predicate as SLSA Provenance v1, and pass the bindings' validate().

usage: python intoto_check.py PROVENANCE_BUNDLE
Prints the subject names on success (exit 0); one line naming the problem otherwise (exit 1).
"""

import base64
import json
import sys

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

SLSA_V1 = "https://slsa.dev/provenance/v1"


def main(path: str) -> None:
    bundle = json.load(open(path))
    envelope = bundle["dsseEnvelope"]
    if envelope["payloadType"] != "application/vnd.in-toto+json":
        raise ValueError(f"payloadType {envelope['payloadType']}")
    payload = base64.b64decode(envelope["payload"])
    statement = json_format.Parse(payload, statement_pb2.Statement())  # strict
    Statement.copy_from_pb(statement).validate()
    if statement.predicate_type != SLSA_V1:
        raise ValueError(f"predicateType {statement.predicate_type}")
    predicate = json.loads(payload)["predicate"]
    provenance = json_format.ParseDict(predicate, provenance_pb2.Provenance())  # strict
    definition = provenance.build_definition
    if not definition.build_type:
        raise ValueError("buildDefinition.buildType is empty")
    if not definition.resolved_dependencies:
        raise ValueError("buildDefinition.resolvedDependencies is empty")
    for dep in definition.resolved_dependencies:
        ResourceDescriptor.copy_from_pb(dep).validate()
    if not provenance.run_details.builder.id:
        raise ValueError("runDetails.builder.id is empty")
    meta = provenance.run_details.metadata
    if not meta.invocation_id or meta.started_on.seconds == 0 or meta.finished_on.seconds == 0:
        raise ValueError("runDetails.metadata needs invocationId, startedOn and finishedOn")
    print("\n".join(s.name for s in statement.subject))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1])
    except Exception as e:  # one line for the Rust test's failure message
        print(f"in-toto-attestation rejected {sys.argv[1]}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
