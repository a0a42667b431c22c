#!/usr/bin/env bash
# Placeholder for seed 1.3's ota_file_uploader.sh, which the seed did not publish.
set -euo pipefail
echo "ota_file_uploader.sh: product ${COMPONENTS_TO_BUILD:-?} version ${OTA_VERSION:-${PRODUCT_VERSION:-?}} (build ${BUILD_ID:-?})"
