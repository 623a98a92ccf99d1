# Ultralytics Tiger-Pose keypoint metainfo (MMPose format), 12 keypoints.
# The keypoints are unnamed upstream (tiger-pose.yaml: kpt_shape [12, 2], flip_idx identity),
# so they are named kpt_0..kpt_11 and nothing swaps on a flip. From the frames, the order looks
# like: 0 nose, 1 head top, 2 withers, 3 tail base, 4/7 hind knees, 5/6 hind paws, 8/10 front
# elbows, 9/11 front paws; the skeleton below follows that reading and is only used for drawing.
# Sigmas are uniform 1/12, the value Ultralytics' pose metric uses for non-COCO skeletons, so
# OKS numbers are comparable with Ultralytics'.
dataset_info = dict(
    dataset_name='tiger',
    paper_info=dict(
        author='Ultralytics',
        title='Tiger-Pose dataset',
        container='',
        year='2023',
        homepage='https://docs.ultralytics.com/datasets/pose/tiger-pose/',
    ),
    keypoint_info={
        0: dict(name='kpt_0', id=0, color=[255, 128, 0], type='', swap=''),
        1: dict(name='kpt_1', id=1, color=[255, 128, 0], type='', swap=''),
        2: dict(name='kpt_2', id=2, color=[255, 128, 0], type='', swap=''),
        3: dict(name='kpt_3', id=3, color=[255, 128, 0], type='', swap=''),
        4: dict(name='kpt_4', id=4, color=[255, 128, 0], type='', swap=''),
        5: dict(name='kpt_5', id=5, color=[255, 128, 0], type='', swap=''),
        6: dict(name='kpt_6', id=6, color=[255, 128, 0], type='', swap=''),
        7: dict(name='kpt_7', id=7, color=[255, 128, 0], type='', swap=''),
        8: dict(name='kpt_8', id=8, color=[255, 128, 0], type='', swap=''),
        9: dict(name='kpt_9', id=9, color=[255, 128, 0], type='', swap=''),
        10: dict(name='kpt_10', id=10, color=[255, 128, 0], type='', swap=''),
        11: dict(name='kpt_11', id=11, color=[255, 128, 0], type='', swap=''),
    },
    skeleton_info={
        0: dict(link=('kpt_0', 'kpt_1'), id=0, color=[51, 153, 255]),
        1: dict(link=('kpt_1', 'kpt_2'), id=1, color=[51, 153, 255]),
        2: dict(link=('kpt_2', 'kpt_3'), id=2, color=[51, 153, 255]),
        3: dict(link=('kpt_3', 'kpt_4'), id=3, color=[51, 153, 255]),
        4: dict(link=('kpt_4', 'kpt_5'), id=4, color=[51, 153, 255]),
        5: dict(link=('kpt_3', 'kpt_7'), id=5, color=[51, 153, 255]),
        6: dict(link=('kpt_7', 'kpt_6'), id=6, color=[51, 153, 255]),
        7: dict(link=('kpt_2', 'kpt_8'), id=7, color=[51, 153, 255]),
        8: dict(link=('kpt_8', 'kpt_9'), id=8, color=[51, 153, 255]),
        9: dict(link=('kpt_2', 'kpt_10'), id=9, color=[51, 153, 255]),
        10: dict(link=('kpt_10', 'kpt_11'), id=10, color=[51, 153, 255]),
    },
    joint_weights=[1.0] * 12,
    sigmas=[1.0 / 12] * 12)
