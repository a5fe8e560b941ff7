#!/usr/bin/env bash
# Regenerates the committed Swift code from Protos/. Run by hand after editing a .proto;
# CI never runs it. Needs protoc and the two generator plugins, built once with:
#   swift build -c release --product protoc-gen-swift         (swift-protobuf 1.39.0)
#   swift build -c release --product protoc-gen-grpc-swift-2  (grpc-swift-protobuf 2.4.1)
# in any scratch package; point GEN_BIN at the folder holding both binaries.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${GEN_BIN:?set GEN_BIN to the folder with protoc-gen-swift and protoc-gen-grpc-swift-2}
protos=$here/Protos
messages=$here/SDK/Sources/BerthProto/Generated
services=$here/Sources/BerthAPI/Generated
rm -rf "$messages" "$services"
mkdir -p "$messages" "$services"
files=$(cd "$protos" && find . -name '*.proto' | sed 's|^\./||' | sort)
mapping=$(mktemp)
trap 'rm -f "$mapping"' EXIT
for f in $files; do
  printf 'mapping { module_name: "BerthProto" proto_file_path: "%s" }\n' "$f" >> "$mapping"
done
cd "$protos"
protoc --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --swift_out="$messages" --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores \
  $files
# Contracts under berth/ cross the plugin ABI, not gRPC: scripts/generate-contracts.py names them.
services_files=$(grep -l '^service ' $files | grep -v '^berth/')
protoc --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
  --grpc-swift_out="$services" --grpc-swift_opt=Visibility=Public \
  --grpc-swift_opt=FileNaming=PathToUnderscores \
  --grpc-swift_opt=ProtoPathModuleMappings="$mapping" \
  $services_files
# Services are generated apart from their messages, which live in the BerthProto module.
sed -i 's/^import GRPCProtobuf$/import GRPCProtobuf\nimport BerthProto/' "$services"/*.swift
echo "generated $(ls "$messages" | wc -l) message files, $(ls "$services" | wc -l) service files"
