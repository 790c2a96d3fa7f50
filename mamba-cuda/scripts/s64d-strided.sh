. .device-carry/device_common.sh
cd "$C"
timeout 150 ./gpu_backward ssd_backward_strided --test-threads=1 --nocapture 2>&1 | grep -E "test result|panicked|strided|rel-L2" | cut -c1-300
