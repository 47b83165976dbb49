from destination_klaviyo.run import run

if __name__ == "__main__":
    run()
