#!/usr/bin/env bash
# Seed 1.4's check_stack_status.sh, unchanged: wait until Heat stack $1 is created.

source ./openrc-sz

if heat stack-list | grep CREATE_IN_PROGRESS | grep $1 ; then
    echo 'Heat stack is creating'
    while true; do
        if heat stack-list | grep CREATE_COMPLETE | grep $1; then
            echo "stack create complete"
            exit
        fi
        if heat stack-list | grep CREATE_FAILED | grep $1; then
            echo "stack create failed"
            exit 1
        fi
        sleep 300
    done
else
    echo 'No stack is creating or stack create failed, so exit with 1'
    exit 1
fi
